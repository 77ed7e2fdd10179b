//! Word swaps from Roget's thesaurus for the distillation variants ([`crate::data::augment`]).
//!
//! Roget files every word under one or more of about a thousand categories (`dull` under
//! DULLNESS, TEDIUM, INEXCITABILITY, …). A word swapped for another of one of its categories
//! keeps a variant close to what reviews say, where a word drawn at random makes noise. The
//! categories are broad, so a swap may change a review's sentiment; the teacher labels the
//! variant, so that only shows the student more of the teacher's function.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use rand::RngExt;
use rand::rngs::StdRng;

use crate::data;
use crate::data::corpus::DataError;

/// Words grouped by category, each word with the categories it is in.
#[derive(Debug, Clone, Default)]
pub struct Thesaurus {
    categories: Vec<Vec<String>>,
    of: HashMap<String, Vec<usize>>,
}

impl Thesaurus {
    /// Reads `roget.csv.bz2`; phrases (entries with a space) are left out, words lower-cased.
    pub fn load(path: &Path) -> Result<Thesaurus, DataError> {
        Ok(Thesaurus::from_entries(data::corpus::roget(path)?))
    }

    /// A thesaurus of `(word, category)` entries.
    pub fn from_entries(entries: impl IntoIterator<Item = (String, String)>) -> Thesaurus {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut thesaurus = Thesaurus::default();
        for (word, category) in entries {
            let word = word.trim().to_lowercase();
            if word.is_empty() || word.contains(char::is_whitespace) {
                continue;
            }
            let next = index.len();
            let id = *index.entry(category).or_insert(next);
            if id == thesaurus.categories.len() {
                thesaurus.categories.push(Vec::new());
            }
            let words = &mut thesaurus.categories[id];
            if !words.contains(&word) {
                words.push(word.clone());
                thesaurus.of.entry(word).or_default().push(id);
            }
        }
        thesaurus
    }

    /// The same categories holding only `words` (so a swap never brings in a word, and with it
    /// tokens, the training texts do not have).
    pub fn restricted_to(&self, words: &HashSet<String>) -> Thesaurus {
        Thesaurus::from_entries(
            self.categories
                .iter()
                .enumerate()
                .flat_map(|(id, members)| {
                    members
                        .iter()
                        .filter(|w| words.contains(*w))
                        .map(move |w| (w.clone(), id.to_string()))
                }),
        )
    }

    /// `word` with its letters swapped for a word sharing one of its categories, keeping the
    /// punctuation around it (`"Dull,"` → `"Boring,"`), if the thesaurus has one.
    pub fn swap(&self, word: &str, rng: &mut StdRng) -> Option<String> {
        let core = core(word);
        let start = word.len()
            - word
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .len();
        let synonym = self.synonym(core, rng)?;
        let mut letters = synonym.chars();
        let synonym = match letters.next() {
            Some(first) if core.starts_with(char::is_uppercase) => {
                first.to_uppercase().chain(letters).collect()
            }
            _ => synonym.to_owned(),
        };
        Some(format!(
            "{}{synonym}{}",
            &word[..start],
            &word[start + core.len()..]
        ))
    }

    /// A word sharing a category with `word` (compared lower-cased), if it has one: a category of
    /// the word with others in it, then one of the others, each drawn evenly.
    fn synonym(&self, word: &str, rng: &mut StdRng) -> Option<&str> {
        let word = word.to_lowercase();
        let shared: Vec<&Vec<String>> = self
            .of
            .get(&word)?
            .iter()
            .map(|&id| &self.categories[id])
            .filter(|members| members.len() > 1)
            .collect();
        if shared.is_empty() {
            return None;
        }
        let members = shared[rng.random_range(0..shared.len())];
        let pick = rng.random_range(0..members.len() - 1);
        members
            .iter()
            .filter(|m| **m != word)
            .nth(pick)
            .map(String::as_str)
    }

    /// Words with at least one category.
    pub fn len(&self) -> usize {
        self.of.len()
    }

    /// Whether no word has a category.
    pub fn is_empty(&self) -> bool {
        self.of.is_empty()
    }
}

/// A word without the punctuation around it (`"class."` → `"class"`).
pub fn core(word: &str) -> &str {
    word.trim_matches(|c: char| !c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn entries() -> Vec<(String, String)> {
        [
            ("dull", "TEDIUM"),
            ("boring", "TEDIUM"),
            ("tiresome", "TEDIUM"),
            ("dull", "DARKNESS"),
            ("dim", "DARKNESS"),
            ("moral badness", "BADNESS"),
            ("evil", "BADNESS"),
        ]
        .into_iter()
        .map(|(w, c)| (w.to_owned(), c.to_owned()))
        .collect()
    }

    #[test]
    fn synonyms_share_a_category_and_stay_among_the_allowed_words() {
        let thesaurus = Thesaurus::from_entries(entries());
        assert_eq!(thesaurus.len(), 5, "the phrase is left out");
        let mut rng = StdRng::seed_from_u64(1);
        let seen: HashSet<&str> = (0..200)
            .filter_map(|_| thesaurus.synonym("Dull", &mut rng))
            .collect();
        assert_eq!(seen, HashSet::from(["boring", "tiresome", "dim"]));
        assert_eq!(
            thesaurus.synonym("evil", &mut rng),
            None,
            "alone in BADNESS"
        );
        assert_eq!(thesaurus.synonym("film", &mut rng), None);

        let allowed: HashSet<String> = ["dull", "boring"].map(String::from).into();
        let restricted = thesaurus.restricted_to(&allowed);
        let seen: HashSet<&str> = (0..200)
            .filter_map(|_| restricted.synonym("dull", &mut rng))
            .collect();
        assert_eq!(seen, HashSet::from(["boring"]));

        assert_eq!(
            restricted.swap("(Dull,", &mut rng).as_deref(),
            Some("(Boring,")
        );
        assert_eq!(restricted.swap("...", &mut rng), None);
    }
}
