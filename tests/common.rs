//! Paths to the repository's manifests, the model cache and photos, manifest variants, and a
//! text-classify package built from the cached MiniLM encoder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use edgemass::text::TextTokenizer;
use edgemass_compress::bert::weights::{Linear, Param};
use edgemass_compress::bert::{BertConfig, Encoder, Export, Pooling};
use edgemass_compress::package::{Provenance, TextClassifier};
use tract_onnx::prelude::*;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The model cache filled by `models/fetch.py`; fails with what to run when it is empty.
pub fn cache() -> PathBuf {
    let cache = std::env::var_os("EDGEMASS_MODEL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/cache"));
    assert!(
        cache.join("photos/bus.jpg").is_file(),
        "model cache {} is empty: run `python3 models/fetch.py` first",
        cache.display()
    );
    cache
}

/// A shipped manifest, `models/NAME.model.toml`.
pub fn manifest(name: &str) -> PathBuf {
    root().join("models").join(format!("{name}.model.toml"))
}

/// A sample photo from the cache.
pub fn photo(name: &str) -> PathBuf {
    cache().join("photos").join(name)
}

/// Writes a copy of manifest `name` into `dir` with `{cache}` resolved and `edit` applied.
pub fn manifest_variant(dir: &Path, name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(manifest(name)).unwrap();
    let text = text.replace("{cache}", &cache().display().to_string());
    let path = dir.join(format!("{name}.model.toml"));
    std::fs::write(&path, edit(text)).unwrap();
    path
}

/// Sentences whose mean embedding anchors the test package's "fresh" side.
const FRESH_ANCHORS: [&str; 3] = [
    "a wonderful, moving film",
    "brilliant acting and a beautiful story",
    "one of the best movies of the year, a delight",
];

/// Sentences whose mean embedding anchors the test package's "rotten" side.
const ROTTEN_ANCHORS: [&str; 3] = [
    "a dull, tedious mess",
    "boring, badly acted and far too long",
    "one of the worst movies of the year, a waste of time",
];

/// A `rotten`/`fresh` text-classify package (manifest path) written by edgemass-compress from the
/// cached MiniLM-L6 encoder, with a head pointing from the mean rotten anchor embedding to the
/// mean fresh one, not a trained head. Written once per test run under the test target's
/// scratch directory, overwriting the previous run's; the export is deterministic, so two test
/// processes writing it at once write the same bytes.
pub fn text_package() -> PathBuf {
    static PACKAGE: OnceLock<PathBuf> = OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            let minilm = cache().join("minilm-l6");
            let config = BertConfig::from_path(&minilm.join("config.json")).unwrap();
            let encoder =
                Encoder::from_safetensors(&minilm.join("model.safetensors"), config).unwrap();
            let tokenizer = minilm.join("tokenizer.json");
            let head = anchor_head(&encoder, &tokenizer);
            let package = TextClassifier {
                name: "minilm-l6-anchors",
                description: "MiniLM-L6 with a head from anchor sentences (tests only)".into(),
                model: &edgemass_compress::bert::onnx::classifier(&encoder, Pooling::Mean, &head),
                labels: vec!["rotten".into(), "fresh".into()],
                tokenizer: &tokenizer,
                max_length: 128,
                provenance: Provenance {
                    source: "tests/common.rs".into(),
                    license: "Apache-2.0".into(),
                    passes: vec!["anchor-head".into()],
                    ..Provenance::default()
                },
            };
            package
                .write(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("text-package"))
                .unwrap()
        })
        .clone()
}

/// A head whose fresh-minus-rotten logit is `4 · d·(x − m) / |d|²`, with `d` the difference of
/// the mean anchor embeddings and `m` their midpoint.
fn anchor_head(encoder: &Encoder, tokenizer: &Path) -> Linear {
    let export = Export {
        pooling: Pooling::Mean,
        normalize: false,
        head: None,
    };
    let plan = tract_onnx::onnx()
        .model_for_proto_model(&edgemass_compress::bert::onnx::to_onnx(encoder, export))
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let tokenizer = TextTokenizer::from_file(tokenizer, 128).unwrap();
    let mean_embedding = |sentences: &[&str]| -> Vec<f32> {
        let b = tokenizer.encode_batch(sentences).unwrap();
        let tensor = |v: &[i64]| Tensor::from_shape(&[b.batch, b.len], v).unwrap().into();
        let out = plan
            .run(tvec![tensor(&b.ids), tensor(&b.mask), tensor(&b.types)])
            .unwrap();
        let view = out[0].to_plain_array_view::<f32>().unwrap();
        let rows: Vec<Vec<f32>> = view
            .outer_iter()
            .map(|r| r.iter().copied().collect())
            .collect();
        (0..rows[0].len())
            .map(|k| rows.iter().map(|r| r[k]).sum::<f32>() / rows.len() as f32)
            .collect()
    };
    let fresh = mean_embedding(&FRESH_ANCHORS);
    let rotten = mean_embedding(&ROTTEN_ANCHORS);
    let d: Vec<f32> = fresh.iter().zip(&rotten).map(|(f, r)| f - r).collect();
    let mid: Vec<f32> = fresh
        .iter()
        .zip(&rotten)
        .map(|(f, r)| (f + r) / 2.0)
        .collect();
    let k = 2.0 / d.iter().map(|v| v * v).sum::<f32>();
    let offset = k * d.iter().zip(&mid).map(|(a, b)| a * b).sum::<f32>();
    let weight: Vec<f32> = d
        .iter()
        .map(|v| -k * v)
        .chain(d.iter().map(|v| k * v))
        .collect();
    Linear {
        weight: Param {
            shape: vec![2, d.len()],
            data: weight,
        },
        bias: Param {
            shape: vec![2],
            data: vec![offset, -offset],
        },
    }
}

/// A test CA (`ca.pem`, `ca.key`) and a server certificate for 127.0.0.1 and localhost signed by
/// it (`server.pem`, `server.key`), made with `openssl` in `dir`.
pub fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(ok.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=edgemass test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
}
