//! Evaluation: answer checking, best-of-N selection, statistics, and the `eval` runner.

pub mod check;
pub mod report;
pub mod run;
pub mod select;
pub mod stats;
