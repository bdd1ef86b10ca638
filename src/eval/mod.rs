//! Evaluation: answer extraction and checking.

pub mod answer;
