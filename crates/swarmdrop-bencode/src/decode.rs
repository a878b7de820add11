//! Bounded, borrowing bencode decoder.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

/// A decoded bencode value borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i…e`
    Int(i64),
    /// `N:…`
    Bytes(&'a [u8]),
    /// `l…e`
    List(Vec<Value<'a>>),
    /// `d…e`
    Dict(Dict<'a>),
}

/// A decoded dictionary: its entries in input order and the exact bytes it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dict<'a> {
    entries: Vec<(&'a [u8], Value<'a>)>,
    encoded: &'a [u8],
}

impl<'a> Dict<'a> {
    /// The value stored under `key`, if any.
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, value)| value)
    }

    /// Entries in the order they appeared in the input.
    pub fn entries(&self) -> &[(&'a [u8], Value<'a>)] {
        &self.entries
    }

    /// The bytes this dictionary was decoded from, `d` to `e` inclusive. SHA-1 of the
    /// `info` dictionary's bytes is a torrent's v1 infohash.
    pub fn encoded(&self) -> &'a [u8] {
        self.encoded
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the dictionary has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The byte string as UTF-8, if this is a byte string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&'a str> {
        self.as_bytes().and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The list, if this is one.
    pub fn as_list(&self) -> Option<&[Value<'a>]> {
        match self {
            Value::List(items) => Some(items),
            _ => None,
        }
    }

    /// The dictionary, if this is one.
    pub fn as_dict(&self) -> Option<&Dict<'a>> {
        match self {
            Value::Dict(dict) => Some(dict),
            _ => None,
        }
    }

    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Int(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::List(_) => "list",
            Value::Dict(_) => "dictionary",
        }
    }

    /// Canonical encoding of this value (dictionary keys sorted).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Value::Dict(dict) => {
                let mut entries: Vec<_> = dict.entries.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                out.push(b'd');
                for (key, value) in entries {
                    Value::Bytes(key).encode(out);
                    value.encode(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// What went wrong while decoding, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bencode: {kind} at byte {offset}")]
pub struct DecodeError {
    /// Byte offset in the input where the problem was found.
    pub offset: usize,
    /// The problem.
    pub kind: DecodeErrorKind,
}

/// The kinds of malformed bencode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeErrorKind {
    /// The input ended inside a value.
    UnexpectedEnd,
    /// A byte that cannot start or continue a value here.
    UnexpectedByte(u8),
    /// Bytes remain after the top-level value.
    TrailingData {
        /// How many bytes remain.
        remaining: usize,
    },
    /// More values than the decoder's item budget.
    TooManyItems {
        /// The limit in force.
        limit: usize,
    },
    /// Nesting deeper than the decoder's limit.
    TooDeep {
        /// The limit in force.
        limit: usize,
    },
    /// A string's length prefix is larger than what is left of the input.
    LengthExceedsInput {
        /// The declared length (saturated at `u64::MAX`).
        declared: u64,
        /// Bytes left in the input.
        remaining: usize,
    },
    /// An integer or length prefix does not fit in 64 bits.
    NumberOverflow,
    /// An integer with a leading zero, `-0`, or no digits: not canonical bencode.
    NonCanonicalNumber,
    /// A dictionary key is not a byte string.
    KeyNotString,
    /// Dictionary keys are not in ascending byte order.
    UnsortedKeys,
    /// The same key appears twice in one dictionary.
    DuplicateKey,
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnexpectedEnd => write!(f, "input ends inside a value"),
            Self::UnexpectedByte(b) => write!(f, "unexpected byte {:?}", char::from(*b)),
            Self::TrailingData { remaining } => {
                write!(f, "{remaining} trailing bytes after the value")
            }
            Self::TooDeep { limit } => write!(f, "nesting deeper than {limit} levels"),
            Self::TooManyItems { limit } => write!(f, "more than {limit} values"),
            Self::LengthExceedsInput {
                declared,
                remaining,
            } => write!(
                f,
                "string length {declared} exceeds the {remaining} bytes left in the input"
            ),
            Self::NumberOverflow => write!(f, "number does not fit in 64 bits"),
            Self::NonCanonicalNumber => write!(f, "number has a leading zero, is -0, or is empty"),
            Self::KeyNotString => write!(f, "dictionary key is not a byte string"),
            Self::UnsortedKeys => write!(f, "dictionary keys are not sorted"),
            Self::DuplicateKey => write!(f, "duplicate dictionary key"),
        }
    }
}

/// Decoder settings.
#[derive(Debug, Clone, Copy)]
pub struct Decoder {
    /// Maximum nesting of lists and dictionaries.
    pub max_depth: usize,
    /// Reject dictionaries whose keys are not in ascending order. BEP 3 requires the
    /// order; some torrents in the wild break it, so readers of foreign files turn
    /// this off (duplicates are always rejected).
    pub require_sorted_keys: bool,
    /// Most values decoded from one input. Each decoded value costs up to 48 bytes
    /// however short its encoding (`0:` is two), so this caps memory at about 48 MiB
    /// per input by default instead of 24 times the input size.
    pub max_items: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Self {
            max_depth: crate::DEFAULT_MAX_DEPTH,
            require_sorted_keys: true,
            max_items: crate::DEFAULT_MAX_ITEMS,
        }
    }
}

/// Decodes exactly one value spanning the whole input, with default limits.
pub fn decode(input: &[u8]) -> Result<Value<'_>, DecodeError> {
    Decoder::default().decode(input)
}

/// Decodes one value from the start of the input and returns it with the number of
/// bytes it used; the rest is left for the caller (a stream of messages, say).
pub fn decode_prefix(input: &[u8]) -> Result<(Value<'_>, usize), DecodeError> {
    Decoder::default().decode_prefix(input)
}

impl Decoder {
    /// Decodes exactly one value spanning the whole input.
    pub fn decode<'a>(&self, input: &'a [u8]) -> Result<Value<'a>, DecodeError> {
        let (value, used) = self.decode_prefix(input)?;
        if used != input.len() {
            return Err(DecodeError {
                offset: used,
                kind: DecodeErrorKind::TrailingData {
                    remaining: input.len() - used,
                },
            });
        }
        Ok(value)
    }

    /// Decodes one value from the start of the input; returns it and its length.
    pub fn decode_prefix<'a>(&self, input: &'a [u8]) -> Result<(Value<'a>, usize), DecodeError> {
        let mut cursor = Cursor {
            input,
            pos: 0,
            items: 0,
            settings: *self,
        };
        let value = cursor.value(0)?;
        Ok((value, cursor.pos))
    }
}

struct Cursor<'a> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    settings: Decoder,
}

impl<'a> Cursor<'a> {
    fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError {
            offset: self.pos,
            kind,
        }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error(DecodeErrorKind::UnexpectedEnd))
    }

    fn value(&mut self, depth: usize) -> Result<Value<'a>, DecodeError> {
        self.items += 1;
        if self.items > self.settings.max_items {
            return Err(self.error(DecodeErrorKind::TooManyItems {
                limit: self.settings.max_items,
            }));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let n = self.integer(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.enter(depth)?;
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.enter(depth)?;
                let start = self.pos;
                self.pos += 1;
                let mut entries: Vec<(&'a [u8], Value<'a>)> = Vec::new();
                // Only once keys arrive out of order (lenient mode) do we need a set to
                // find duplicates; sorted keys are checked against their predecessor.
                let mut seen: Option<BTreeSet<&'a [u8]>> = None;
                while self.peek()? != b'e' {
                    let key_offset = self.pos;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.error(DecodeErrorKind::KeyNotString));
                    }
                    let key = self.bytes()?;
                    let problem = match (entries.last(), seen.as_mut()) {
                        (_, Some(set)) => {
                            (!set.insert(key)).then_some(DecodeErrorKind::DuplicateKey)
                        }
                        (Some((previous, _)), None) => match key.cmp(previous) {
                            Ordering::Greater => None,
                            Ordering::Equal => Some(DecodeErrorKind::DuplicateKey),
                            Ordering::Less if self.settings.require_sorted_keys => {
                                Some(DecodeErrorKind::UnsortedKeys)
                            }
                            Ordering::Less => {
                                let mut set: BTreeSet<&'a [u8]> =
                                    entries.iter().map(|(k, _)| *k).collect();
                                let duplicate = !set.insert(key);
                                seen = Some(set);
                                duplicate.then_some(DecodeErrorKind::DuplicateKey)
                            }
                        },
                        (None, None) => None,
                    };
                    if let Some(kind) = problem {
                        return Err(DecodeError {
                            offset: key_offset,
                            kind,
                        });
                    }
                    let value = self.value(depth + 1)?;
                    entries.push((key, value));
                }
                self.pos += 1;
                Ok(Value::Dict(Dict {
                    entries,
                    encoded: &self.input[start..self.pos],
                }))
            }
            other => Err(self.error(DecodeErrorKind::UnexpectedByte(other))),
        }
    }

    fn enter(&self, depth: usize) -> Result<(), DecodeError> {
        if depth >= self.settings.max_depth {
            return Err(self.error(DecodeErrorKind::TooDeep {
                limit: self.settings.max_depth,
            }));
        }
        Ok(())
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let length_offset = self.pos;
        let declared = self.length_prefix()?;
        let remaining = self.input.len() - self.pos;
        let length = usize::try_from(declared)
            .ok()
            .filter(|len| *len <= remaining)
            .ok_or(DecodeError {
                offset: length_offset,
                kind: DecodeErrorKind::LengthExceedsInput {
                    declared,
                    remaining,
                },
            })?;
        let bytes = &self.input[self.pos..self.pos + length];
        self.pos += length;
        Ok(bytes)
    }

    /// Reads `N:` and returns N; leading zeros are refused except for `0:` itself.
    fn length_prefix(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        loop {
            let byte = self.peek()?;
            match byte {
                b'0'..=b'9' => {
                    if self.pos > start && self.input[start] == b'0' {
                        return Err(DecodeError {
                            offset: start,
                            kind: DecodeErrorKind::NonCanonicalNumber,
                        });
                    }
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(byte - b'0')))
                        .ok_or_else(|| self.error(DecodeErrorKind::NumberOverflow))?;
                    self.pos += 1;
                }
                b':' if self.pos > start => {
                    self.pos += 1;
                    return Ok(value);
                }
                other => return Err(self.error(DecodeErrorKind::UnexpectedByte(other))),
            }
        }
    }

    /// Reads a signed decimal integer up to `terminator` (consumed).
    fn integer(&mut self, terminator: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        // Accumulate negatively so that i64::MIN parses.
        let mut value: i64 = 0;
        loop {
            let byte = self.peek()?;
            match byte {
                b'0'..=b'9' => {
                    let digit = i64::from(byte - b'0');
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_sub(digit))
                        .ok_or_else(|| self.error(DecodeErrorKind::NumberOverflow))?;
                    self.pos += 1;
                }
                b if b == terminator => break,
                other => return Err(self.error(DecodeErrorKind::UnexpectedByte(other))),
            }
        }
        let digits = &self.input[digits_start..self.pos];
        let non_canonical = digits.is_empty()
            || (digits.len() > 1 && digits[0] == b'0')
            || (negative && digits == b"0");
        if non_canonical {
            return Err(DecodeError {
                offset: start,
                kind: DecodeErrorKind::NonCanonicalNumber,
            });
        }
        self.pos += 1;
        if negative {
            Ok(value)
        } else {
            value.checked_neg().ok_or(DecodeError {
                offset: start,
                kind: DecodeErrorKind::NumberOverflow,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(input: &[u8]) -> DecodeErrorKind {
        decode(input).unwrap_err().kind
    }

    #[test]
    fn decodes_each_type() {
        assert_eq!(decode(b"i42e").unwrap(), Value::Int(42));
        assert_eq!(decode(b"i-7e").unwrap(), Value::Int(-7));
        assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
        assert_eq!(decode(b"4:spam").unwrap(), Value::Bytes(b"spam"));
        assert_eq!(decode(b"0:").unwrap(), Value::Bytes(b""));
        let list = decode(b"l4:spami1ee").unwrap();
        assert_eq!(list.as_list().unwrap().len(), 2);
        let dict = decode(b"d3:cow3:moo4:spam4:eggse").unwrap();
        let dict = dict.as_dict().unwrap();
        assert_eq!(dict.get(b"cow").unwrap().as_str(), Some("moo"));
        assert_eq!(dict.encoded(), b"d3:cow3:moo4:spam4:eggse");
    }

    #[test]
    fn integer_extremes() {
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap(),
            Value::Int(i64::MIN)
        );
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap(),
            Value::Int(i64::MAX)
        );
        assert_eq!(
            kind(b"i9223372036854775808e"),
            DecodeErrorKind::NumberOverflow
        );
        assert_eq!(
            kind(b"i-9223372036854775809e"),
            DecodeErrorKind::NumberOverflow
        );
    }

    #[test]
    fn non_canonical_numbers_are_refused() {
        assert_eq!(kind(b"i-0e"), DecodeErrorKind::NonCanonicalNumber);
        assert_eq!(kind(b"i03e"), DecodeErrorKind::NonCanonicalNumber);
        assert_eq!(kind(b"ie"), DecodeErrorKind::NonCanonicalNumber);
        assert_eq!(kind(b"i-e"), DecodeErrorKind::NonCanonicalNumber);
        assert_eq!(kind(b"04:spam"), DecodeErrorKind::NonCanonicalNumber);
    }

    #[test]
    fn huge_length_prefix_allocates_nothing() {
        let err = decode(b"10000000000:abc").unwrap_err();
        assert_eq!(err.offset, 0);
        assert_eq!(
            err.kind,
            DecodeErrorKind::LengthExceedsInput {
                declared: 10_000_000_000,
                remaining: 3
            }
        );
        assert_eq!(
            kind(b"99999999999999999999999:x"),
            DecodeErrorKind::NumberOverflow
        );
    }

    #[test]
    fn deep_nesting_stops_at_the_limit() {
        let mut input = vec![b'l'; 100_000];
        input.extend(std::iter::repeat_n(b'e', 100_000));
        let err = decode(&input).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::TooDeep { limit: 64 });
        assert_eq!(err.offset, 64);
    }

    #[test]
    fn truncation_and_trailing_data() {
        assert_eq!(kind(b"d3:cow"), DecodeErrorKind::UnexpectedEnd);
        assert_eq!(kind(b"l"), DecodeErrorKind::UnexpectedEnd);
        assert_eq!(kind(b""), DecodeErrorKind::UnexpectedEnd);
        assert_eq!(
            kind(b"i1ei2e"),
            DecodeErrorKind::TrailingData { remaining: 3 }
        );
        let (value, used) = decode_prefix(b"i1ei2e").unwrap();
        assert_eq!((value, used), (Value::Int(1), 3));
    }

    #[test]
    fn dictionary_key_rules() {
        assert_eq!(kind(b"d1:b0:1:a0:e"), DecodeErrorKind::UnsortedKeys);
        assert_eq!(kind(b"d1:a0:1:a0:e"), DecodeErrorKind::DuplicateKey);
        assert_eq!(kind(b"di1e0:e"), DecodeErrorKind::KeyNotString);
        let lenient = Decoder {
            require_sorted_keys: false,
            ..Decoder::default()
        };
        assert!(lenient.decode(b"d1:b0:1:a0:e").is_ok());
        assert_eq!(
            lenient.decode(b"d1:a0:1:b0:1:a0:e").unwrap_err().kind,
            DecodeErrorKind::DuplicateKey
        );
        // A duplicate after keys went out of order is still found.
        assert_eq!(
            lenient.decode(b"d1:b0:1:a0:1:b0:e").unwrap_err().kind,
            DecodeErrorKind::DuplicateKey
        );
        assert_eq!(
            lenient.decode(b"d1:c0:1:a0:1:b0:1:a0:e").unwrap_err().kind,
            DecodeErrorKind::DuplicateKey
        );
    }

    #[test]
    fn item_budget_caps_memory() {
        let mut input = b"l".to_vec();
        input.extend(std::iter::repeat_n(&b"0:"[..], 200).flatten());
        input.push(b'e');
        let small = Decoder {
            max_items: 100,
            ..Decoder::default()
        };
        assert_eq!(
            small.decode(&input).unwrap_err().kind,
            DecodeErrorKind::TooManyItems { limit: 100 }
        );
        assert!(decode(&input).is_ok());
    }
}
