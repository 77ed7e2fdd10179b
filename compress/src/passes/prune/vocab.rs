//! Vocabulary pruning: keep only the word-embedding rows a domain uses.
//!
//! A 30 k-token BERT vocabulary is most of a small student's bytes. The kept vocabulary is every
//! token the training texts produce (or, with a minimum count, produce that often), the special
//! tokens, and every single character with and without the `##` continuation prefix, so any text
//! still tokenizes: WordPiece picks the longest match among the kept tokens, a dropped word falls
//! apart into kept pieces, and for a text whose tokens were all kept the ids map one to one. The
//! tokenizer file gets the new ids; the graph gets the kept rows.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::package::PackageError;
use crate::package::TextClassifier;
use crate::package::text::TextPackage;
use crate::passes::prune::PruneError;

/// What the pass kept.
#[derive(Debug, Clone)]
pub struct Kept {
    /// Tokens in the original vocabulary.
    pub before: usize,
    /// Tokens kept.
    pub after: usize,
    /// The written manifest.
    pub manifest: PathBuf,
}

/// Writes a copy of the package at `manifest` into `out` whose vocabulary holds only the tokens
/// `texts` use at least `min_count` times (plus special tokens and single characters); a
/// `min_count` of 0 or 1 keeps every token they use.
pub fn prune_vocabulary(
    manifest: &Path,
    texts: &[&str],
    min_count: usize,
    out: &Path,
    name: &str,
) -> Result<Kept, PruneError> {
    let package = TextPackage::open(manifest)?;
    let path = package.tokenizer_path.clone();
    let bad = |reason: String| PruneError::Tokenizer {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let mut json: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let model = json.get("model").ok_or_else(|| bad("no `model`".into()))?;
    if model.get("type").and_then(Value::as_str) != Some("WordPiece") {
        return Err(bad(
            "only WordPiece tokenizers (BERT family) are supported".into()
        ));
    }
    let prefix = model
        .get("continuing_subword_prefix")
        .and_then(Value::as_str)
        .unwrap_or("##")
        .to_owned();
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no `model.vocab` table".into()))?;
    let mut by_id: Vec<Option<String>> = vec![None; vocab.len()];
    for (token, id) in vocab {
        let id = id
            .as_u64()
            .filter(|&i| (i as usize) < by_id.len())
            .ok_or_else(|| bad(format!("token `{token}` has an invalid id")))?;
        by_id[id as usize] = Some(token.clone());
    }

    let mut counts: HashMap<u32, usize> = HashMap::new();
    for ids in package.tokenize(texts)? {
        for id in ids {
            *counts.entry(id).or_default() += 1;
        }
    }
    let mut keep: BTreeSet<u32> = counts
        .into_iter()
        .filter(|&(_, n)| n >= min_count)
        .map(|(id, _)| id)
        .collect();
    for (id, token) in by_id.iter().enumerate() {
        let Some(token) = token else { continue };
        let bare = token.strip_prefix(prefix.as_str()).unwrap_or(token);
        if bare.chars().count() == 1 {
            keep.insert(id as u32);
        }
    }
    let specials = json
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("id")?.as_u64());
    keep.extend(specials.map(|id| id as u32));
    let kept: Vec<u32> = keep.into_iter().collect();
    let new_id =
        |old: u64| -> Option<u64> { kept.binary_search(&(old as u32)).ok().map(|i| i as u64) };

    let mut new_vocab = serde_json::Map::new();
    for (i, &old) in kept.iter().enumerate() {
        let token = by_id[old as usize]
            .clone()
            .ok_or_else(|| bad(format!("id {old} has no token")))?;
        new_vocab.insert(token, Value::from(i as u64));
    }
    json["model"]["vocab"] = Value::Object(new_vocab);
    remap_ids(&mut json, &new_id).map_err(bad)?;

    let imported = package.encoder()?;
    let head = imported.head.as_ref().ok_or_else(|| {
        bad(format!(
            "{} has no classification head",
            package.model.display()
        ))
    })?;
    let mut encoder = imported.encoder.clone();
    let width = encoder.word.shape[1];
    encoder.word.data = kept
        .iter()
        .flat_map(|&old| {
            let start = old as usize * width;
            encoder.word.data[start..start + width].to_vec()
        })
        .collect();
    encoder.word.shape[0] = kept.len();
    encoder.config.vocab_size = kept.len();

    std::fs::create_dir_all(out)
        .map_err(|e| bad(format!("cannot create {}: {e}", out.display())))?;
    let tokenizer = out.join("tokenizer.json");
    let text = serde_json::to_string(&json).expect("JSON values serialise");
    crate::write_atomic(&tokenizer, text.as_bytes())
        .map_err(|e| bad(format!("cannot write {}: {e}", tokenizer.display())))?;
    let used = if min_count > 1 {
        format!("used {min_count}+ times in {} texts", texts.len())
    } else {
        format!("{} texts", texts.len())
    };
    let provenance = package.derived_provenance(format!(
        "vocabulary: {} of {} tokens kept ({used}, single characters, special tokens)",
        kept.len(),
        by_id.len(),
    ));
    let manifest = TextClassifier {
        name,
        description: format!("{}-token vocabulary of {}", kept.len(), manifest.display()),
        model: &crate::bert::onnx::classifier(&encoder, imported.pooling, head),
        labels: package.labels.clone(),
        tokenizer: &tokenizer,
        max_length: package.max_length,
        provenance,
    }
    .write(out)
    .map_err(PackageError::from)?;
    Ok(Kept {
        before: by_id.len(),
        after: kept.len(),
        manifest,
    })
}

/// Rewrites the ids of added tokens, the post-processor's special tokens and the padding id.
fn remap_ids(json: &mut Value, new_id: &dyn Fn(u64) -> Option<u64>) -> Result<(), String> {
    let map = |v: &mut Value, what: &str| -> Result<(), String> {
        let old = v.as_u64().ok_or_else(|| format!("{what} is not an id"))?;
        *v = Value::from(new_id(old).ok_or_else(|| format!("{what} {old} was not kept"))?);
        Ok(())
    };
    if let Some(tokens) = json.get_mut("added_tokens").and_then(Value::as_array_mut) {
        for t in tokens {
            if let Some(id) = t.get_mut("id") {
                map(id, "added token id")?;
            }
        }
    }
    if let Some(specials) = json
        .pointer_mut("/post_processor/special_tokens")
        .and_then(Value::as_object_mut)
    {
        for special in specials.values_mut() {
            for id in special
                .get_mut("ids")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                map(id, "special token id")?;
            }
        }
    }
    for key in ["cls", "sep"] {
        if let Some(id) = json.pointer_mut(&format!("/post_processor/{key}/1")) {
            map(id, "special token id")?;
        }
    }
    if let Some(pad) = json.pointer_mut("/padding/pad_id") {
        map(pad, "padding id")?;
    }
    Ok(())
}
