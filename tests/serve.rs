//! `edgemass serve` over HTTP: answers equal tract's own on the same input, clear errors for bad
//! requests, concurrent requests batched together with each getting its own answer, and a
//! repository written by `edgemass-compress export-triton` served as it is.

use std::sync::{Arc, Barrier};

use edgemass::fallback::protocol::{self, InferRequest, Tensor, Values};
use edgemass::model::Model;
use edgemass::text::TextTokenizer;
use edgemass::vision::preprocess::{input_values, load_image};
use edgemass_compress::package::triton::{self, Batching};

use crate::common::{manifest, photo, text_package};
use crate::host::{Serve, get, infer, post, repository};

/// BlazeFace's input for bus.jpg.
fn bus_input() -> Tensor {
    let model = edgemass::model::Manifest::from_path(&manifest("blazeface-256")).unwrap();
    let (data, shape, _) = input_values(&load_image(&photo("bus.jpg")).unwrap(), &model.input);
    Tensor {
        name: "input:0".into(),
        shape: shape.to_vec(),
        values: Values::Fp32(data),
    }
}

fn request(inputs: Vec<Tensor>) -> InferRequest {
    InferRequest {
        inputs,
        ..InferRequest::default()
    }
}

fn metric(text: &str, name: &str, model: &str) -> f64 {
    let key = format!("edgemass_serve_{name}{{model=\"{model}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn serve_answers_like_tract_and_refuses_bad_requests_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let token = "s3cret-token";
    let serve = Serve::start(
        &repository(dir.path(), false),
        &["--max-body-mib", "4"],
        &[("EDGEMASS_SERVE_TOKEN", token)],
    );
    let port = serve.port;
    let auth = [("Authorization", format!("Bearer {token}"))];
    assert_eq!(get(port, "/v2/health/live").unwrap().0, 200);
    assert_eq!(get(port, "/v2/models/blazeface-256").unwrap().0, 401);

    // A binary request with binary outputs, against tract run in this process.
    let input = bus_input();
    let mut wanted = request(vec![input.clone()]);
    wanted.binary_outputs = true;
    let answer = infer(port, "blazeface-256", &wanted, true, &auth);
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    let length = answer
        .header(protocol::HEADER_LENGTH)
        .and_then(|v| v.parse().ok());
    assert!(
        length.is_some(),
        "binary outputs come with the header length"
    );
    let decoded = protocol::decode_response(&answer.body, length).unwrap();
    assert_eq!(decoded.model_name, "blazeface-256");
    assert_eq!(decoded.model_version.as_deref(), Some("1"));
    let model = Model::from_manifest_path(&manifest("blazeface-256")).unwrap();
    let tensor =
        tract_onnx::prelude::Tensor::from_shape(&input.shape, &input.values.to_f32()).unwrap();
    let local = model.run(tensor).unwrap();
    assert_eq!(decoded.outputs.len(), 4);
    for output in &decoded.outputs {
        let reference = local.get(&output.name).unwrap();
        assert_eq!(output.shape, reference.shape());
        let served = output.values.to_f32();
        let worst = served
            .iter()
            .zip(reference.iter())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "{}: {worst}", output.name);
    }
    // The same request as JSON gets a JSON answer.
    let json = infer(
        port,
        "blazeface-256",
        &request(vec![input.clone()]),
        false,
        &auth,
    );
    assert_eq!(json.status, 200);
    assert_eq!(json.header(protocol::HEADER_LENGTH), None);
    assert_eq!(json.json()["outputs"][0]["datatype"], "FP32");

    let small = |values: Values| Tensor {
        name: "input:0".into(),
        shape: vec![1, 2],
        values,
    };
    let full_ints = Tensor {
        values: Values::Int64(vec![0; 256 * 256 * 3]),
        ..input.clone()
    };
    let header = protocol::HEADER_LENGTH;
    // Sizes that overflow when added up: refused with a 400, and the server goes on answering.
    let overflowing = format!(
        r#"{{"inputs":[{{"name":"a","shape":[1],"datatype":"UINT8","parameters":{{"binary_data_size":1}}}},{{"name":"input:0","shape":[4294967295,4294967297],"datatype":"UINT8","parameters":{{"binary_data_size":{max}}}}}]}}"#,
        max = u64::MAX
    );
    let cases: Vec<(u16, crate::host::Response, &str)> = vec![
        (
            404,
            infer(port, "nope", &request(vec![input.clone()]), true, &auth),
            "unknown model `nope`",
        ),
        (
            404,
            post(port, "/v2/models/blazeface-256/versions/7/infer", &auth, b"{}"),
            "has no version `7`",
        ),
        (
            400,
            post(port, "/v2/models/blazeface-256/infer", &auth, b"{\"inputs\": [1,"),
            "malformed inference JSON",
        ),
        (
            400,
            infer(port, "blazeface-256", &request(vec![small(Values::Fp32(vec![0.0; 2]))]), false, &auth),
            "has shape [1, 2], the model takes [1, 256, 256, 3]",
        ),
        (
            400,
            infer(port, "blazeface-256", &request(vec![full_ints]), true, &auth),
            "must be FP32, not INT64",
        ),
        (
            400,
            infer(
                port,
                "blazeface-256",
                &InferRequest {
                    outputs: vec!["scores".into()],
                    ..request(vec![input.clone()])
                },
                true,
                &auth,
            ),
            "has no output `scores`",
        ),
        (
            400,
            post(
                port,
                "/v2/models/blazeface-256/infer",
                &[auth[0].clone(), (header, "99".into())],
                b"{}",
            ),
            "exceeds the body",
        ),
        (
            400,
            post(
                port,
                "/v2/models/blazeface-256/infer",
                &[auth[0].clone(), (header, overflowing.len().to_string())],
                &[overflowing.as_bytes(), &[1, 2, 3]].concat(),
            ),
            "binary data ends",
        ),
        (
            413,
            crate::host::exchange(
                port,
                format!(
                    "POST /v2/models/blazeface-256/infer HTTP/1.0\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
                    8 << 20
                )
                .as_bytes(),
            )
            .unwrap(),
            "larger than 4194304 bytes",
        ),
        (
            413,
            crate::host::post_chunked(
                port,
                "/v2/models/blazeface-256/infer",
                &auth,
                8 << 20,
            ),
            "larger than 4194304 bytes",
        ),
    ];
    for (status, response, message) in cases {
        assert_eq!(response.status, status, "{message}: {}", response.error());
        assert_eq!(response.header("content-type"), Some("application/json"));
        assert!(
            response.error().contains(message),
            "{} (wanted {message})",
            response.error()
        );
    }

    // After all of them, a good request is answered as the first was.
    let again = infer(port, "blazeface-256", &wanted, true, &auth);
    assert_eq!(again.status, 200, "{}", again.error());
    assert_eq!(again.body, answer.body);

    let metrics = crate::host::exchange(
        port,
        format!("GET /metrics HTTP/1.0\r\nAuthorization: Bearer {token}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    assert_eq!(metric(&text, "successes_total", "blazeface-256"), 3.0);
    assert_eq!(
        metric(&text, "failures_total", "blazeface-256"),
        8.0,
        "{text}"
    );
    assert_eq!(metric(&text, "batches_total", "blazeface-256"), 3.0);
}

#[test]
fn concurrent_requests_share_batches_and_each_gets_its_own_answer() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(
        &repository(dir.path(), true),
        &["--max-batch", "8", "--max-queue-delay-us", "200000"],
        &[],
    );
    let port = serve.port;
    let package = text_package();
    let tokenizer =
        TextTokenizer::from_file(&package.parent().unwrap().join("tokenizer.json"), 128).unwrap();
    let words = [
        "good", "bad", "fine", "dull", "great", "awful", "nice", "poor",
    ];
    let requests: Vec<InferRequest> = words
        .iter()
        .map(|w| {
            let batch = tokenizer.encode_batch(&[&format!("a {w} film")]).unwrap();
            let tensor = |name: &str, values: &[i64]| Tensor {
                name: name.into(),
                shape: vec![1, batch.len],
                values: Values::Int64(values.to_vec()),
            };
            request(vec![
                tensor("input_ids", &batch.ids),
                tensor("attention_mask", &batch.mask),
                tensor("token_type_ids", &batch.types),
            ])
        })
        .collect();
    assert!(
        requests
            .iter()
            .all(|r| r.inputs[0].shape == requests[0].inputs[0].shape),
        "the texts must tokenize to one length to share a batch"
    );
    let scores = |r: &InferRequest| -> Vec<f32> {
        let answer = infer(port, "minilm-l6-anchors", r, true, &[]);
        assert_eq!(
            answer.status,
            200,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let decoded = protocol::decode_response(&answer.body, None).unwrap();
        let scores = decoded.outputs.iter().find(|t| t.name == "scores").unwrap();
        assert_eq!(scores.shape, [1, 2]);
        scores.values.to_f32()
    };
    let alone: Vec<Vec<f32>> = requests.iter().map(scores).collect();
    let barrier = Arc::new(Barrier::new(requests.len()));
    let together: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = requests
            .iter()
            .map(|r| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    barrier.wait();
                    scores(r)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for ((word, a), t) in words.iter().zip(&alone).zip(&together) {
        for (x, y) in a.iter().zip(t) {
            assert!((x - y).abs() < 1e-4, "{word}: alone {a:?}, batched {t:?}");
        }
    }
    let (_, body) = get(port, "/metrics").unwrap();
    let text = String::from_utf8(body).unwrap();
    let model = "minilm-l6-anchors";
    assert_eq!(metric(&text, "requests_total", model), 16.0);
    assert_eq!(metric(&text, "batch_rows_total", model), 16.0);
    let batches = metric(&text, "batches_total", model);
    assert!(batches < 16.0, "no two requests shared a batch:\n{text}");
}

#[test]
fn a_repository_exported_for_triton_is_served_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("triton");
    let batching = Batching {
        max_batch: 4,
        max_queue_delay_us: 1000,
    };
    let face = triton::export(&manifest("blazeface-256"), &repo, batching).unwrap();
    let text = triton::export(&text_package(), &repo, batching).unwrap();
    let face_config = std::fs::read_to_string(face.join("config.pbtxt")).unwrap();
    for line in [
        "name: \"blazeface-256\"",
        "platform: \"onnxruntime_onnx\"",
        "max_batch_size: 0",
        "name: \"input:0\"\n    data_type: TYPE_FP32\n    dims: [ 1, 256, 256, 3 ]",
        "name: \"Identity_3:0\"",
    ] {
        assert!(face_config.contains(line), "{line} not in\n{face_config}");
    }
    let text_config = std::fs::read_to_string(text.join("config.pbtxt")).unwrap();
    for line in [
        "max_batch_size: 4",
        "name: \"input_ids\"\n    data_type: TYPE_INT64\n    dims: [ -1 ]",
        "max_queue_delay_microseconds: 1000",
    ] {
        assert!(text_config.contains(line), "{line} not in\n{text_config}");
    }
    assert!(face.join("1/model.onnx").is_file() && text.join("1/model.onnx").is_file());

    let serve = Serve::start(&repo, &[], &[]);
    let (status, body) = get(serve.port, "/v2/models/blazeface-256").unwrap();
    assert_eq!(status, 200);
    let metadata: protocol::ModelMetadata = serde_json::from_slice(&body).unwrap();
    assert_eq!(metadata.inputs[0].shape, [1, 256, 256, 3]);
    assert_eq!(metadata.outputs.len(), 4);
    let (_, body) = get(serve.port, "/v2/models/minilm-l6-anchors").unwrap();
    let metadata: protocol::ModelMetadata = serde_json::from_slice(&body).unwrap();
    assert_eq!(metadata.inputs.len(), 3);
    assert!(
        metadata
            .inputs
            .iter()
            .all(|i| i.shape == [-1, -1] && i.datatype == "INT64")
    );
    let answer = infer(
        serve.port,
        "blazeface-256",
        &request(vec![bus_input()]),
        true,
        &[],
    );
    assert_eq!(
        answer.status,
        200,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
}
