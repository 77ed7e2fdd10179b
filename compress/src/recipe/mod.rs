//! Recipes: a teacher and a list of passes, run in order with a measurement after each, a report
//! table, a Pareto plot and the student package at the end.

pub mod detect;
mod error;
pub mod pareto;
pub mod plot;
pub mod step;
pub mod text;

pub use error::RecipeError;
