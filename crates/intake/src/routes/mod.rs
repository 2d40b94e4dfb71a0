//! The HTTP routes (spec §1–§6, §9).

pub mod health;
pub mod result;
pub mod submit;
