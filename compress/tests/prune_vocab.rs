//! Vocabulary pruning on a real teacher: texts the vocabulary was chosen from score exactly as
//! before, unseen texts still tokenize and mostly keep their class, and the file shrinks.

use edgemass_compress::data;
use edgemass_compress::data::corpus::Limits;
use edgemass_compress::package::text::TextPackage;
use edgemass_compress::passes::prune::vocab::prune_vocabulary;

use crate::common::{cached, small_teacher};

#[test]
fn pruned_vocabulary_keeps_seen_texts_exact_and_unseen_texts_close() {
    let dir = tempfile::tempdir().unwrap();
    let teacher = small_teacher(dir.path());
    let limits = Limits {
        train: Some(2000),
        unlabelled: Some(500),
        test: Some(300),
    };
    let corpus = data::corpus::corpus(
        &cached("data/rotten_tomatoes_corpus_full.csv.bz2"),
        Some(&cached("data/guardian_headlines.csv.bz2")),
        42,
        limits,
    )
    .unwrap();
    let seen: Vec<&str> = corpus
        .train
        .iter()
        .map(|e| e.text.as_str())
        .chain(corpus.unlabelled.iter().map(String::as_str))
        .collect();
    let kept = prune_vocabulary(&teacher, &seen, 1, &dir.path().join("vocab"), "vocab").unwrap();
    eprintln!("kept {} of {}", kept.after, kept.before);
    assert_eq!(kept.before, 30522);
    assert!(kept.after < kept.before / 2, "kept {}", kept.after);

    let before = TextPackage::open(&teacher).unwrap();
    let after = TextPackage::open(&kept.manifest).unwrap();
    let (plan_before, plan_after) = (
        before.plan("logits").unwrap(),
        after.plan("logits").unwrap(),
    );
    let sample: Vec<&str> = seen.iter().step_by(25).copied().collect();
    let a = before.run(&plan_before, &sample).unwrap();
    let b = after.run(&plan_after, &sample).unwrap();
    let worst = a
        .iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-4, "seen texts changed by {worst}");

    let unseen: Vec<&str> = corpus.test.iter().map(|e| e.text.as_str()).collect();
    let a = before.run(&plan_before, &unseen).unwrap();
    let b = after.run(&plan_after, &unseen).unwrap();
    let class = |row: &Vec<f32>| usize::from(row[1] > row[0]);
    let same = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| class(x) == class(y))
        .count();
    // Measured here: 279 of 300 (vocabulary of 10,460 tokens from 2,500 texts).
    assert!(same >= 270, "{same} of 300 unseen texts kept their class");

    let bytes = |p: &std::path::Path| std::fs::metadata(p).unwrap().len();
    assert!(bytes(&after.model) < bytes(&before.model) * 3 / 4);
    let tokens = after.tokenize(&["zyxwvut qqq 東京"]).unwrap();
    assert!(tokens[0].len() > 4, "{tokens:?}");

    // Tokens used at least 3 times: a smaller table; words used less often fall apart into kept
    // pieces, so the same texts tokenize into more, and never unknown, tokens.
    let frequent =
        prune_vocabulary(&teacher, &seen, 3, &dir.path().join("frequent"), "frequent").unwrap();
    eprintln!("kept {} tokens used 3+ times", frequent.after);
    assert!(
        frequent.after < kept.after * 3 / 4,
        "kept {}",
        frequent.after
    );
    let frequent = TextPackage::open(&frequent.manifest).unwrap();
    let (all, some) = (
        after.tokenize(&seen).unwrap(),
        frequent.tokenize(&seen).unwrap(),
    );
    let count = |t: &[Vec<u32>]| t.iter().map(Vec::len).sum::<usize>();
    assert!(count(&some) > count(&all), "{} tokens", count(&some));
    let unknown = frequent.tokenize(&["[UNK]"]).unwrap()[0][1];
    assert!(some.iter().flatten().all(|&id| id != unknown));
}
