//! Evaluation: the `eval` runner, its statistics and its report. Answer checking and
//! best-of-N selection are [`crate::answer`].

pub mod report;
pub mod run;
pub mod stats;
