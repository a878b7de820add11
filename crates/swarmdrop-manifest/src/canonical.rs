//! Canonical JSON as TUF signs it (the OLPC form that securesystemslib implements).
//!
//! Object keys sorted by code point, no insignificant whitespace, strings escaped only
//! for `"` and `\`, integers only. Signatures are computed over these bytes, so two
//! implementations agree on what was signed whatever formatting the file on disk uses.

use serde_json::Value;

/// A value that has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonicalError {
    /// Canonical JSON has no floating-point numbers.
    #[error("canonical JSON cannot hold the non-integer number {0}")]
    Float(String),
}

/// The canonical bytes of `value`.
pub fn to_canonical_json(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(256);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.extend_from_slice(i.to_string().as_bytes());
            } else if let Some(u) = n.as_u64() {
                out.extend_from_slice(u.to_string().as_bytes());
            } else {
                return Err(CanonicalError::Float(n.to_string()));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's default map is ordered by key bytes, which for UTF-8 is
            // code-point order; sort anyway so the `preserve_order` feature cannot
            // silently change what we sign.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for byte in s.bytes() {
        if byte == b'"' || byte == b'\\' {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn matches_securesystemslib() {
        // Expected bytes from securesystemslib.formats.encode_canonical.
        let value = json!({"b": [1, "x\"y\\z", true, null], "a": {"é": -3, "A": "\n"}});
        assert_eq!(
            to_canonical_json(&value).unwrap(),
            "{\"a\":{\"A\":\"\n\",\"é\":-3},\"b\":[1,\"x\\\"y\\\\z\",true,null]}".as_bytes()
        );
    }

    #[test]
    fn floats_are_refused() {
        assert!(matches!(
            to_canonical_json(&json!({"x": 1.5})),
            Err(CanonicalError::Float(_))
        ));
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map("\\PC{0,6}", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        /// Canonical bytes parse back to the same value and canonicalise to themselves.
        #[test]
        fn canonical_form_is_stable(value in json_value()) {
            let bytes = to_canonical_json(&value).unwrap();
            let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(&reparsed, &value);
            prop_assert_eq!(to_canonical_json(&reparsed).unwrap(), bytes);
        }

        /// Formatting on disk does not change what is signed.
        #[test]
        fn pretty_printing_does_not_change_canonical_bytes(value in json_value()) {
            let pretty = serde_json::to_vec_pretty(&value).unwrap();
            let reparsed: Value = serde_json::from_slice(&pretty).unwrap();
            prop_assert_eq!(to_canonical_json(&reparsed).unwrap(), to_canonical_json(&value).unwrap());
        }
    }
}
