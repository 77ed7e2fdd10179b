//! Extra distillation texts made from the training texts, for the teacher to label.
//!
//! A small student learns its teacher's function from the inputs it is shown; a few thousand
//! reviews show it little of that function. Each variant of a review drops some words, swaps
//! some for a word of the same thesaurus category (when a thesaurus is given; see
//! [`crate::data::thesaurus`]) and others for words drawn from the whole training set (so common words
//! come up as often as they do in reviews), and sometimes keeps only a span of it. Whether the
//! variant keeps the review's sentiment does not matter: the teacher labels it. Every word of a
//! variant is a word of the training texts, so variants need no tokens the vocabulary pass
//! dropped.

use std::borrow::Cow;
use std::collections::HashSet;

use rand::RngExt;
use rand::rngs::StdRng;

use crate::data::thesaurus::Thesaurus;

/// Chance that a word is dropped.
const DROP: f64 = 0.1;
/// Chance that a word the thesaurus knows is swapped for another of its category.
const SYNONYM: f64 = 0.2;
/// Chance that a word is replaced by a word from the pool.
const REPLACE: f64 = 0.1;
/// Chance that a variant keeps only a span of the text.
const SPAN: f64 = 0.5;
/// Shortest span kept, as a fraction of the words.
const SPAN_MIN: f64 = 0.5;

/// `copies` variants of every text, none identical to its source, in the texts' order; with a
/// `thesaurus`, words are also swapped for others of their category that the texts use.
pub fn variants(
    texts: &[&str],
    copies: usize,
    thesaurus: Option<&Thesaurus>,
    rng: &mut StdRng,
) -> Vec<String> {
    let pool: Vec<&str> = texts.iter().flat_map(|t| t.split_whitespace()).collect();
    if pool.is_empty() {
        return Vec::new();
    }
    let synonyms = thesaurus
        .map(|t| {
            let words: HashSet<String> = pool
                .iter()
                .map(|w| crate::data::thesaurus::core(w).to_lowercase())
                .collect();
            t.restricted_to(&words)
        })
        .unwrap_or_default();
    let mut out = Vec::with_capacity(texts.len() * copies);
    for text in texts {
        let words: Vec<&str> = text.split_whitespace().collect();
        if words.len() < 2 {
            continue;
        }
        for _ in 0..copies {
            let variant = variant(&words, &pool, &synonyms, rng);
            if variant != *text && !variant.is_empty() {
                out.push(variant);
            }
        }
    }
    out
}

fn variant(words: &[&str], pool: &[&str], synonyms: &Thesaurus, rng: &mut StdRng) -> String {
    let span = if rng.random_bool(SPAN) {
        let min = ((words.len() as f64 * SPAN_MIN).ceil() as usize).max(1);
        let len = rng.random_range(min..=words.len());
        let start = rng.random_range(0..=words.len() - len);
        &words[start..start + len]
    } else {
        words
    };
    let mut kept = Vec::with_capacity(span.len());
    for &word in span {
        if rng.random_bool(DROP) {
            continue;
        }
        // Without a thesaurus no draw is made, so variants stay what they were before it.
        let synonym = if !synonyms.is_empty() && rng.random_bool(SYNONYM) {
            synonyms.swap(word, rng)
        } else {
            None
        };
        kept.push(match synonym {
            Some(synonym) => Cow::Owned(synonym),
            None if rng.random_bool(REPLACE) => {
                Cow::Borrowed(pool[rng.random_range(0..pool.len())])
            }
            None => Cow::Borrowed(word),
        });
    }
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn variants_are_new_texts_made_of_training_words() {
        let texts = [
            "a gripping , beautifully acted drama that earns its tears",
            "the plot is thin and the jokes fall flat for most of the film",
            "ok",
        ];
        let mut rng = StdRng::seed_from_u64(7);
        let out = variants(&texts, 5, None, &mut rng);
        assert!(out.len() >= 8, "{} variants of two usable texts", out.len());
        let vocabulary: std::collections::HashSet<&str> =
            texts.iter().flat_map(|t| t.split_whitespace()).collect();
        for v in &out {
            assert!(!texts.contains(&v.as_str()), "{v:?} copies a source");
            assert!(
                v.split_whitespace().all(|w| vocabulary.contains(w)),
                "{v:?}"
            );
        }
        let again = variants(&texts, 5, None, &mut StdRng::seed_from_u64(7));
        assert_eq!(out, again, "the same seed gives the same texts");
    }

    #[test]
    fn a_thesaurus_swaps_words_for_training_words_of_their_category() {
        let texts = [
            "A dull, tiresome film.",
            "the second half is boring and slow",
            "sluggish pacing",
        ];
        let thesaurus = Thesaurus::from_entries(
            [
                ("dull", "TEDIUM"),
                ("boring", "TEDIUM"),
                ("tiresome", "TEDIUM"),
                ("monotonous", "TEDIUM"),
                ("slow", "SLOWNESS"),
                ("sluggish", "SLOWNESS"),
            ]
            .map(|(w, c)| (w.to_owned(), c.to_owned())),
        );
        let with = variants(
            &texts,
            200,
            Some(&thesaurus),
            &mut StdRng::seed_from_u64(11),
        );
        let without = variants(&texts, 200, None, &mut StdRng::seed_from_u64(11));
        // "boring" or "Boring," in a variant of the first review: a TEDIUM swap, or (rarely) a
        // pool draw.
        let swaps = |out: &[String]| {
            out.iter()
                .filter(|v| v.contains("film") && v.contains("oring"))
                .count()
        };
        assert!(
            swaps(&with) >= 2 * swaps(&without) + 10,
            "{} variants with a swap, {} without the thesaurus",
            swaps(&with),
            swaps(&without)
        );
        assert!(
            with.iter().all(|v| !v.contains("monotonous")),
            "a word no training text uses came in"
        );
    }
}
