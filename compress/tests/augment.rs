//! Distillation variants of real Rotten Tomatoes reviews with Roget's thesaurus from the model
//! cache: the thesaurus swaps many of their words, and only for words the reviews use.

use std::collections::HashSet;

use edgemass_compress::data;
use edgemass_compress::data::augment::variants;
use edgemass_compress::data::thesaurus::{Thesaurus, core};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::cached;

#[test]
fn roget_swaps_words_of_real_reviews_for_words_the_reviews_use() {
    let reviews =
        data::corpus::rotten_tomatoes(&cached("data/rotten_tomatoes_corpus_full.csv.bz2")).unwrap();
    let texts: Vec<&str> = reviews.iter().take(500).map(|r| r.text.as_str()).collect();
    let thesaurus = Thesaurus::load(&cached("data/roget.csv.bz2")).unwrap();
    assert!(thesaurus.len() > 50_000, "{} words", thesaurus.len());

    let words: HashSet<String> = texts
        .iter()
        .flat_map(|t| t.split_whitespace())
        .map(|w| core(w).to_lowercase())
        .collect();
    // Share of a variant's words that its review does not have. Variants come in review order,
    // one per review here, but none for a one-word review or when it came out unchanged, so each
    // is matched to the review among the next few that shares most of its words.
    let foreign = |out: &[String]| {
        let (mut new, mut all, mut next) = (0usize, 0usize, 0usize);
        for variant in out {
            let overlap = |t: &str| {
                let own: HashSet<&str> = t.split_whitespace().collect();
                variant
                    .split_whitespace()
                    .filter(|w| own.contains(w))
                    .count()
            };
            let source = (next..(next + 4).min(texts.len()))
                .max_by_key(|&i| (overlap(texts[i]), std::cmp::Reverse(i)))
                .expect("a review for every variant");
            next = source + 1;
            let own: HashSet<&str> = texts[source].split_whitespace().collect();
            for word in variant.split_whitespace() {
                all += 1;
                new += usize::from(!own.contains(word));
                assert!(
                    words.contains(&core(word).to_lowercase()),
                    "{word:?} is in no review"
                );
            }
        }
        new as f64 / all as f64
    };
    let with = variants(&texts, 1, Some(&thesaurus), &mut StdRng::seed_from_u64(5));
    let without = variants(&texts, 1, None, &mut StdRng::seed_from_u64(5));
    let (with, without) = (foreign(&with), foreign(&without));
    eprintln!("words not in the review: {with:.3} with the thesaurus, {without:.3} without");
    assert!(with > without * 1.5, "{with:.3} vs {without:.3}");
}
