//! Evaluation: the `eval` runner, its statistics and its report. Answer checking and best-of-N
//! selection are [`crate::answer`]; code is judged by [`crate::code_check`].

pub mod report;
pub mod run;
pub mod stats;
