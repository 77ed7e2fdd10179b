//! What students learn from and are measured on: labelled text corpora, text rendered onto
//! photos, augmentation and the thesaurus it draws on.

pub mod augment;
pub mod corpus;
pub mod render_text;
pub mod thesaurus;
