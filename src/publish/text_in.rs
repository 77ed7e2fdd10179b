//! Texts to classify as they arrive: an MQTT payload on `P/D/text/in` (plain UTF-8 or JSON
//! `{"id": …, "text": …}`) or a line of standard input or a file, checked and clipped.

/// Longest text accepted in bytes; longer ones are cut at a character boundary and flagged.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;

/// A text waiting for the classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRequest {
    /// The caller's id, or one made up here (UUID v7, or `stdin:LINE`).
    pub id: String,
    /// The text, at most [`MAX_TEXT_BYTES`].
    pub text: String,
    /// Where it came from: `mqtt`, `stdin` or `file`.
    pub source: &'static str,
    /// The text was longer than [`MAX_TEXT_BYTES`] and was cut.
    pub clipped: bool,
    /// When it arrived.
    pub received: std::time::Instant,
}

/// Why an input was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextInError {
    /// The bytes are not UTF-8.
    #[error("payload is not valid UTF-8 (byte {0})")]
    Utf8(usize),
    /// The payload starts like JSON but does not parse.
    #[error("malformed JSON: {0}")]
    Json(String),
    /// JSON without a string `text` field.
    #[error("JSON payload needs a string field `text`")]
    MissingText,
    /// `id` is neither a string nor a number.
    #[error("JSON field `id` must be a string or a number")]
    BadId,
    /// Nothing but whitespace.
    #[error("text is empty")]
    Empty,
}

impl TextRequest {
    /// Parses an MQTT payload.
    pub fn from_mqtt(payload: &[u8]) -> Result<TextRequest, TextInError> {
        let body = std::str::from_utf8(payload).map_err(|e| TextInError::Utf8(e.valid_up_to()))?;
        let (id, text) = if body.trim_start().starts_with('{') {
            let value: serde_json::Value =
                serde_json::from_str(body).map_err(|e| TextInError::Json(e.to_string()))?;
            let text = value
                .get("text")
                .and_then(|t| t.as_str())
                .ok_or(TextInError::MissingText)?
                .to_owned();
            let id = match value.get("id") {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                Some(_) => return Err(TextInError::BadId),
            };
            (id, text)
        } else {
            (None, body.to_owned())
        };
        let id = id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        TextRequest::new(id, &text, "mqtt")
    }

    /// Parses one line of a text stream; `line` counts from 1.
    pub fn from_line(
        bytes: &[u8],
        source: &'static str,
        line: usize,
    ) -> Result<TextRequest, TextInError> {
        let text = std::str::from_utf8(bytes).map_err(|e| TextInError::Utf8(e.valid_up_to()))?;
        TextRequest::new(format!("{source}:{line}"), text, source)
    }

    fn new(id: String, text: &str, source: &'static str) -> Result<TextRequest, TextInError> {
        if text.trim().is_empty() {
            return Err(TextInError::Empty);
        }
        let mut end = text.len().min(MAX_TEXT_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Ok(TextRequest {
            id,
            text: text[..end].to_owned(),
            source,
            clipped: end < text.len(),
            received: std::time::Instant::now(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_gets_an_id() {
        let r = TextRequest::from_mqtt("a fine film".as_bytes()).unwrap();
        assert_eq!(r.text, "a fine film");
        assert_eq!(r.source, "mqtt");
        assert!(!r.clipped);
        assert_eq!(r.id.len(), 36);
    }

    #[test]
    fn json_keeps_the_callers_id() {
        let r = TextRequest::from_mqtt(br#"{"id": 42, "text": "dull"}"#).unwrap();
        assert_eq!((r.id.as_str(), r.text.as_str()), ("42", "dull"));
        let r = TextRequest::from_mqtt(br#" {"id":"a-1","text":"ok"}"#).unwrap();
        assert_eq!(r.id, "a-1");
    }

    #[test]
    fn bad_payloads_are_named() {
        assert_eq!(
            TextRequest::from_mqtt(b"ok \xff\xfe"),
            Err(TextInError::Utf8(3))
        );
        assert!(matches!(
            TextRequest::from_mqtt(b"{\"text\": "),
            Err(TextInError::Json(_))
        ));
        assert_eq!(
            TextRequest::from_mqtt(br#"{"body": "x"}"#),
            Err(TextInError::MissingText)
        );
        assert_eq!(
            TextRequest::from_mqtt(br#"{"id": [1], "text": "x"}"#),
            Err(TextInError::BadId)
        );
        assert_eq!(TextRequest::from_mqtt(b"  \n"), Err(TextInError::Empty));
        assert_eq!(
            TextRequest::from_mqtt(br#"{"text": ""}"#),
            Err(TextInError::Empty)
        );
    }

    #[test]
    fn long_text_is_clipped_on_a_char_boundary() {
        let text = "é".repeat(MAX_TEXT_BYTES);
        let r = TextRequest::from_mqtt(text.as_bytes()).unwrap();
        assert!(r.clipped);
        assert_eq!(r.text.len(), MAX_TEXT_BYTES);
        assert!(r.text.chars().all(|c| c == 'é'));
    }

    #[test]
    fn lines_are_numbered() {
        let r = TextRequest::from_line(b"hello", "stdin", 7).unwrap();
        assert_eq!(r.id, "stdin:7");
        assert_eq!(
            TextRequest::from_line(b"", "file", 2),
            Err(TextInError::Empty)
        );
    }
}
