//! The HTTP routes (`docs/api.md` §1–§6, §9).

pub mod batch;
pub mod correct;
pub mod erase;
pub mod health;
pub mod images;
pub mod lifecycle;
pub mod list;
pub mod result;
pub mod submit;
