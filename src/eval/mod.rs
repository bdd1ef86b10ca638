//! Evaluation: the `eval` runner, its statistics and its report, and the judging of code
//! benchmarks by running code. Answer checking and best-of-N selection are [`crate::answer`].

pub mod code;
pub mod report;
pub mod run;
pub mod stats;
