//! The HTTP routes (`docs/api.md` §1–§6, §9).

pub mod batch;
pub mod health;
pub mod result;
pub mod submit;
