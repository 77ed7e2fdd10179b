//! Text data sets from the model cache: Rotten Tomatoes reviews (labelled), Guardian headlines
//! (unlabelled) and Roget's thesaurus, read straight from their `.csv.bz2` files; VADER's
//! human-rated tweets and snippets (labelled, of other kinds); and the tokenizer set up for them.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use tokenizers::{PaddingParams, Tokenizer, TruncationParams};

/// Label names of a sentiment package, indexed by class id.
pub const SENTIMENT_LABELS: [&str; 2] = ["negative", "positive"];

/// Rotten Tomatoes' categories for the same class ids, as its `category` column spells them (and
/// as packages made before the labels were renamed still name them).
pub const CORPUS_CATEGORIES: [&str; 2] = ["rotten", "fresh"];

/// Errors while reading a data set.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened.
    #[error("cannot read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The CSV is malformed or lacks a column.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One labelled text.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The text, exactly as stored.
    pub text: String,
    /// Class id into [`SENTIMENT_LABELS`].
    pub label: usize,
}

/// The review rows (`fresh`/`rotten`) of `rotten_tomatoes_corpus_full.csv.bz2`, in file order;
/// plot summaries are skipped.
pub fn rotten_tomatoes(path: &Path) -> Result<Vec<Example>, DataError> {
    let mut out = Vec::new();
    for row in rows(path, &["category", "text"])? {
        let [category, text] = <[String; 2]>::try_from(row).expect("two columns asked");
        if let Some(label) = CORPUS_CATEGORIES.iter().position(|l| *l == category) {
            out.push(Example { text, label });
        }
    }
    Ok(out)
}

/// How far from neutral a mean human rating (VADER's scale, −4 to 4) must be to count as a label:
/// nearer to 0 the raters themselves were split, and the text is left out.
pub const RATED_MARGIN: f64 = 1.0;

/// The texts of one of VADER's ground-truth files (`data/vader/*_GroundTruth.txt`: `id`, mean
/// rating, text, tab-separated): positive at a rating of [`RATED_MARGIN`] or more, negative at
/// −[`RATED_MARGIN`] or less, in file order.
pub fn rated(path: &Path) -> Result<Vec<Example>, DataError> {
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let format = |reason: &str| DataError::Format {
            path: path.to_owned(),
            reason: format!("line {}: {reason}", i + 1),
        };
        let mut fields = line.splitn(3, '\t');
        let (Some(_), Some(rating), Some(text)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(format("expected id, rating and text separated by tabs"));
        };
        let rating: f64 = rating
            .trim()
            .parse()
            .map_err(|_| format("the rating is not a number"))?;
        let label = if rating >= RATED_MARGIN {
            1
        } else if rating <= -RATED_MARGIN {
            0
        } else {
            continue;
        };
        out.push(Example {
            text: text.trim().to_owned(),
            label,
        });
    }
    Ok(out)
}

/// The `Text` column of `guardian_headlines.csv.bz2`.
pub fn guardian_headlines(path: &Path) -> Result<Vec<String>, DataError> {
    Ok(rows(path, &["Text"])?
        .into_iter()
        .filter_map(|mut row| row.pop())
        .collect())
}

/// A fixed-seed shuffle split: `(train, test)` with `test_fraction` of the examples held out.
pub fn split(examples: &[Example], test_fraction: f64, seed: u64) -> (Vec<Example>, Vec<Example>) {
    let mut shuffled = examples.to_vec();
    shuffled.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    let test = ((shuffled.len() as f64) * test_fraction).round() as usize;
    let train = shuffled.split_off(test);
    (train, shuffled)
}

/// The texts of a distillation run, all from fixed-seed selections.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// Rotten Tomatoes' training split (first `train_limit`).
    pub train: Vec<Example>,
    /// Unlabelled texts (first `unlabelled_limit` non-empty ones).
    pub unlabelled: Vec<String>,
    /// Rotten Tomatoes' held-out split (first `test_limit`).
    pub test: Vec<Example>,
}

/// Limits on a [`Corpus`]; `None` takes everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Labelled training texts.
    pub train: Option<usize>,
    /// Unlabelled texts.
    pub unlabelled: Option<usize>,
    /// Held-out texts.
    pub test: Option<usize>,
}

/// Splits Rotten Tomatoes 80/20 with `seed` and reads the unlabelled headlines, if any.
pub fn corpus(
    labelled: &Path,
    unlabelled: Option<&Path>,
    seed: u64,
    limits: Limits,
) -> Result<Corpus, DataError> {
    let (mut train, mut test) = split(&rotten_tomatoes(labelled)?, 0.2, seed);
    train.truncate(limits.train.unwrap_or(usize::MAX));
    test.truncate(limits.test.unwrap_or(usize::MAX));
    let mut headlines = match unlabelled {
        Some(path) => guardian_headlines(path)?,
        None => Vec::new(),
    };
    headlines.retain(|h| !h.trim().is_empty());
    headlines.truncate(limits.unlabelled.unwrap_or(usize::MAX));
    Ok(Corpus {
        train,
        unlabelled: headlines,
        test,
    })
}

/// Loads `tokenizer.json` with truncation at `max_length` and, when `pad`, padding to the longest
/// text of a batch (the file's own padding and truncation are replaced).
pub fn tokenizer(path: &Path, max_length: usize, pad: bool) -> Result<Tokenizer, String> {
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| e.to_string())?;
    tokenizer.with_padding(pad.then(PaddingParams::default));
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length,
            ..Default::default()
        }))
        .map_err(|e| e.to_string())?;
    Ok(tokenizer)
}

/// The `(word, category)` rows of Roget's thesaurus, `roget.csv.bz2` (no header line).
pub fn roget(path: &Path) -> Result<Vec<(String, String)>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bz2(path)?);
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| DataError::Format {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        match (record.get(0), record.get(1)) {
            (Some(word), Some(category)) => out.push((word.to_owned(), category.to_owned())),
            _ => {
                return Err(DataError::Format {
                    path: path.to_owned(),
                    reason: format!(
                        "line {}: expected `word,category`",
                        record.position().map_or(0, |p| p.line())
                    ),
                });
            }
        }
    }
    Ok(out)
}

fn bz2(path: &Path) -> Result<bzip2::read::MultiBzDecoder<std::fs::File>, DataError> {
    let file = std::fs::File::open(path).map_err(|source| DataError::Read {
        path: path.to_owned(),
        source,
    })?;
    Ok(bzip2::read::MultiBzDecoder::new(file))
}

fn rows(path: &Path, columns: &[&str]) -> Result<Vec<Vec<String>>, DataError> {
    let format = |reason: String| DataError::Format {
        path: path.to_owned(),
        reason,
    };
    let mut reader = csv::Reader::from_reader(bz2(path)?);
    let headers = reader.headers().map_err(|e| format(e.to_string()))?.clone();
    let index: Vec<usize> = columns
        .iter()
        .map(|c| {
            headers
                .iter()
                .position(|h| h == *c)
                .ok_or_else(|| format(format!("no `{c}` column")))
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| format(e.to_string()))?;
        out.push(
            index
                .iter()
                .map(|&i| record.get(i).unwrap_or_default().to_owned())
                .collect(),
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rated_texts_are_labelled_by_the_raters_mean_and_near_neutral_ones_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rated_GroundTruth.txt");
        std::fs::write(
            &path,
            "1_1\t2.5\tI love this\n1_2\t-0.4\tit is a box\n\n1_3\t-1.0\tbroke in a day\t(sic)\n",
        )
        .unwrap();
        let texts: Vec<(String, usize)> = rated(&path)
            .unwrap()
            .into_iter()
            .map(|e| (e.text, e.label))
            .collect();
        assert_eq!(
            texts,
            [
                ("I love this".to_owned(), 1),
                ("broke in a day\t(sic)".to_owned(), 0)
            ]
        );
        std::fs::write(&path, "1_1\tgood\tI love this\n").unwrap();
        let err = rated(&path).unwrap_err().to_string();
        assert!(err.ends_with("line 1: the rating is not a number"), "{err}");
    }
}
