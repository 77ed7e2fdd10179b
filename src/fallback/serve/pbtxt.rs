//! The subset of Triton's `config.pbtxt` (protobuf text format) that `edgemass serve` reads:
//! `name`, `max_batch_size`, `input` and `output` (name, data_type, dims) and
//! `dynamic_batching` (max_queue_delay_microseconds). Other keys Triton knows (instance groups,
//! version policy, optimisation) are accepted and left alone.

use std::time::Duration;

use super::config::{Batching, ModelConfig, TensorSpec};
use crate::fallback::protocol::DataType;

/// A parsed protobuf text value.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    /// A number, identifier or enum value, as written.
    Scalar(String),
    /// A quoted string, unescaped.
    Text(String),
    /// A `{ ... }` message.
    Message(Vec<(String, Node)>),
    /// A `[ ... ]` list.
    List(Vec<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Punct(char),
}

/// Splits text into tokens, dropping `#` comments.
fn tokens(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while chars.peek().is_some_and(|c| *c != '\n') {
                    chars.next();
                }
            }
            '{' | '}' | '[' | ']' | ':' | ',' | ';' => {
                out.push((Token::Punct(c), line));
                chars.next();
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None | Some('\n') => {
                            return Err(format!("line {line}: unterminated string"));
                        }
                        Some(q) if q == c => break,
                        Some('\\') => match chars.next() {
                            Some('n') => s.push('\n'),
                            Some('t') => s.push('\t'),
                            Some(other) => s.push(other),
                            None => return Err(format!("line {line}: unterminated string")),
                        },
                        Some(other) => s.push(other),
                    }
                }
                out.push((Token::Text(s), line));
            }
            c if c.is_alphanumeric() || "_-+.".contains(c) => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_alphanumeric() || "_-+.".contains(c) {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push((Token::Word(word), line));
            }
            other => return Err(format!("line {line}: unexpected `{other}`")),
        }
    }
    Ok(out)
}

/// Deepest nesting of `{ }` messages a config may have; Triton's own go four deep. The parser
/// recurses once per level, so a limit keeps a hostile file from overflowing the stack.
const MAX_DEPTH: usize = 32;

struct Parser {
    tokens: Vec<(Token, usize)>,
    at: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at).map(|(t, _)| t)
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.at)
            .or(self.tokens.last())
            .map_or(1, |(_, l)| *l)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).map(|(t, _)| t.clone());
        self.at += 1;
        t
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    /// Fields until `end` (or the end of input when `end` is `None`).
    fn fields(&mut self, end: Option<char>) -> Result<Vec<(String, Node)>, String> {
        let mut fields = Vec::new();
        loop {
            while self.eat(',') || self.eat(';') {}
            match (self.peek(), end) {
                (None, None) => return Ok(fields),
                (None, Some(c)) => return Err(format!("line {}: missing `{c}`", self.line())),
                (Some(Token::Punct(c)), Some(e)) if *c == e => {
                    self.at += 1;
                    return Ok(fields);
                }
                _ => {}
            }
            let line = self.line();
            let Some(Token::Word(key)) = self.next() else {
                return Err(format!("line {line}: expected a field name"));
            };
            let colon = self.eat(':');
            let value = if self.eat('[') {
                let mut items = Vec::new();
                while !self.eat(']') {
                    items.push(self.value()?);
                    self.eat(',');
                }
                Node::List(items)
            } else if colon || self.peek() == Some(&Token::Punct('{')) {
                self.value()?
            } else {
                return Err(format!("line {line}: expected `:` after `{key}`"));
            };
            fields.push((key, value));
        }
    }

    fn value(&mut self) -> Result<Node, String> {
        let line = self.line();
        match self.next() {
            Some(Token::Punct('{')) if self.depth == MAX_DEPTH => Err(format!(
                "line {line}: messages nest deeper than {MAX_DEPTH} levels"
            )),
            Some(Token::Punct('{')) => {
                self.depth += 1;
                let fields = self.fields(Some('}'))?;
                self.depth -= 1;
                Ok(Node::Message(fields))
            }
            Some(Token::Word(w)) => Ok(Node::Scalar(w)),
            Some(Token::Text(t)) => Ok(Node::Text(t)),
            _ => Err(format!("line {line}: expected a value")),
        }
    }
}

fn scalar<'a>(node: &'a Node, key: &str) -> Result<&'a str, String> {
    match node {
        Node::Scalar(s) | Node::Text(s) => Ok(s),
        _ => Err(format!("`{key}` must be a single value")),
    }
}

fn integer(node: &Node, key: &str) -> Result<i64, String> {
    scalar(node, key)?
        .parse()
        .map_err(|_| format!("`{key}` must be an integer"))
}

/// The messages of a repeated field written either as `key [ {..}, {..} ]` or `key {..}` twice.
fn messages<'a>(fields: &'a [(String, Node)], key: &str) -> Vec<&'a [(String, Node)]> {
    let mut out = Vec::new();
    for (_, v) in fields.iter().filter(|(k, _)| k == key) {
        match v {
            Node::Message(m) => out.push(m.as_slice()),
            Node::List(items) => out.extend(items.iter().filter_map(|i| match i {
                Node::Message(m) => Some(m.as_slice()),
                _ => None,
            })),
            _ => {}
        }
    }
    out
}

/// The protocol datatype of a Triton `TYPE_*` name.
pub fn datatype(triton: &str) -> Option<DataType> {
    DataType::parse(triton.strip_prefix("TYPE_")?)
}

fn tensor(fields: &[(String, Node)], kind: &str) -> Result<TensorSpec, String> {
    let mut name = None;
    let mut data_type = None;
    let mut dims = None;
    for (key, value) in fields {
        match key.as_str() {
            "name" => name = Some(scalar(value, "name")?.to_owned()),
            "data_type" => {
                let written = scalar(value, "data_type")?;
                data_type = Some(datatype(written).ok_or_else(|| {
                    format!(
                        "{kind} data_type {written} is not supported (TYPE_BOOL, TYPE_UINT8, TYPE_INT8, TYPE_INT32, TYPE_INT64, TYPE_FP32, TYPE_FP64)"
                    )
                })?);
            }
            "dims" => {
                let items = match value {
                    Node::List(items) => items.iter().collect(),
                    single => vec![single],
                };
                dims = Some(
                    items
                        .into_iter()
                        .map(|d| integer(d, "dims"))
                        .collect::<Result<Vec<i64>, _>>()?,
                );
            }
            "reshape" => return Err(format!("{kind} `reshape` is not supported")),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| format!("an {kind} has no name"))?;
    let datatype = data_type.ok_or_else(|| format!("{kind} `{name}` has no data_type"))?;
    let dims = dims.ok_or_else(|| format!("{kind} `{name}` has no dims"))?;
    if dims.iter().any(|d| *d < -1 || *d == 0) {
        return Err(format!(
            "{kind} `{name}` dims {dims:?} must be positive or -1"
        ));
    }
    Ok(TensorSpec {
        name,
        datatype,
        dims,
    })
}

/// Parses a `config.pbtxt`; `dir_name` is the model's directory name, which a `name` field
/// must equal.
pub fn parse(text: &str, dir_name: &str) -> Result<ModelConfig, String> {
    let mut parser = Parser {
        tokens: tokens(text)?,
        at: 0,
        depth: 0,
    };
    let fields = parser.fields(None)?;
    let mut config = ModelConfig {
        name: dir_name.to_owned(),
        platform: "onnxruntime_onnx".to_owned(),
        max_batch_size: 0,
        inputs: Vec::new(),
        outputs: Vec::new(),
        batching: None,
    };
    for (key, value) in &fields {
        match key.as_str() {
            "name" => {
                let name = scalar(value, "name")?;
                if name != dir_name {
                    return Err(format!(
                        "name `{name}` differs from its directory `{dir_name}`"
                    ));
                }
            }
            "platform" | "backend" => {
                let platform = scalar(value, key)?;
                if !["onnxruntime_onnx", "onnxruntime"].contains(&platform) {
                    return Err(format!(
                        "{key} `{platform}` is not ONNX (edgemass serve runs onnxruntime_onnx models)"
                    ));
                }
            }
            "max_batch_size" => {
                config.max_batch_size = usize::try_from(integer(value, key)?)
                    .map_err(|_| "`max_batch_size` must be 0 or more".to_owned())?;
            }
            "dynamic_batching" => {
                let Node::Message(inner) = value else {
                    return Err("`dynamic_batching` must be a message".to_owned());
                };
                let mut delay = Duration::ZERO;
                for (k, v) in inner {
                    if k == "max_queue_delay_microseconds" {
                        let us = u64::try_from(integer(v, k)?)
                            .map_err(|_| format!("`{k}` must be 0 or more"))?;
                        delay = Duration::from_micros(us);
                    }
                }
                config.batching = Some(Batching {
                    max_queue_delay: delay,
                });
            }
            _ => {}
        }
    }
    config.inputs = messages(&fields, "input")
        .into_iter()
        .map(|m| tensor(m, "input"))
        .collect::<Result<_, _>>()?;
    config.outputs = messages(&fields, "output")
        .into_iter()
        .map(|m| tensor(m, "output"))
        .collect::<Result<_, _>>()?;
    if config.inputs.is_empty() {
        return Err("no `input` is given".to_owned());
    }
    if config.outputs.is_empty() {
        return Err("no `output` is given".to_owned());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERT: &str = r#"
        # written by edgemass-compress export-triton
        name: "minilm"
        platform: "onnxruntime_onnx"
        max_batch_size: 8
        input [
          { name: "input_ids", data_type: TYPE_INT64, dims: [ -1 ] },
          { name: "attention_mask" data_type: TYPE_INT64 dims: [ -1 ] }
        ]
        output { name: "scores" data_type: TYPE_FP32 dims: [ 2 ] }
        output { name: "logits" data_type: TYPE_FP32 dims: 2 }
        dynamic_batching { max_queue_delay_microseconds: 500 }
        instance_group [ { count: 1, kind: KIND_GPU } ]
        version_policy: { latest: { num_versions: 1 } }
    "#;

    #[test]
    fn a_triton_config_reads() {
        let c = parse(BERT, "minilm").unwrap();
        assert_eq!(c.max_batch_size, 8);
        assert_eq!(
            c.inputs.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["input_ids", "attention_mask"]
        );
        assert_eq!(c.inputs[1].datatype, DataType::Int64);
        assert_eq!(c.inputs[0].dims, [-1]);
        assert_eq!(c.outputs[0].datatype, DataType::Fp32);
        assert_eq!(c.outputs[1].dims, [2]);
        assert_eq!(
            c.batching,
            Some(Batching {
                max_queue_delay: Duration::from_micros(500)
            })
        );
    }

    #[test]
    fn without_dynamic_batching_requests_run_alone() {
        let text = BERT.replace("dynamic_batching { max_queue_delay_microseconds: 500 }", "");
        assert_eq!(parse(&text, "minilm").unwrap().batching, None);
    }

    #[test]
    fn bad_configs_say_what_is_wrong() {
        let cases = [
            (
                BERT.replace("\"minilm\"", "\"other\""),
                "differs from its directory",
            ),
            (
                BERT.replace("TYPE_FP32", "TYPE_STRING"),
                "TYPE_STRING is not supported",
            ),
            (
                BERT.replace("onnxruntime_onnx", "tensorrt_plan"),
                "is not ONNX",
            ),
            (BERT.replace("dims: 2", "dims: 0"), "must be positive or -1"),
            (
                BERT.replace("max_batch_size: 8", "max_batch_size: -1"),
                "0 or more",
            ),
            (
                BERT.replace("\"scores\"", "\"scores"),
                "unterminated string",
            ),
        ];
        for (text, expected) in &cases {
            let err = parse(text, "minilm").unwrap_err();
            assert!(err.contains(expected), "{err} (wanted {expected})");
        }
        let err = parse("input [ { name: \"x\" ", "m").unwrap_err();
        assert!(err.contains("missing `}`"), "{err}");
        let err = parse("name \"x\"", "x").unwrap_err();
        assert!(err.contains("line 1: expected `:` after `name`"), "{err}");
        assert!(
            parse("name: \"m\"", "m")
                .unwrap_err()
                .contains("no `input`")
        );
    }

    #[test]
    fn a_hundred_thousand_nested_messages_are_refused_not_a_stack_overflow() {
        let text = "a {".repeat(100_000);
        let err = parse(&text, "m").unwrap_err();
        assert_eq!(err, "line 1: messages nest deeper than 32 levels");
        let nested = format!("{}{}", "a {".repeat(32), "}".repeat(32));
        let err = parse(&nested, "m").unwrap_err();
        assert!(err.contains("no `input`"), "{err}");
    }
}
