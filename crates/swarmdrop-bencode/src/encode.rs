//! Canonical bencode writer.

/// A mistake in the order of writes that would produce non-canonical bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A dictionary key was written that does not sort after the previous one.
    #[error("bencode: dictionary key {key:?} does not sort after {previous:?}")]
    KeyOrder {
        /// The key written.
        key: String,
        /// The key before it.
        previous: String,
    },
}

/// Writes canonical bencode into a caller's buffer.
///
/// Dictionaries are written with [`Writer::dict`]; the closure receives a
/// [`DictWriter`] whose keys must come in ascending byte order.
pub struct Writer<'buf> {
    out: &'buf mut Vec<u8>,
}

/// Writes the entries of one dictionary, checking key order.
pub struct DictWriter<'w, 'buf> {
    writer: &'w mut Writer<'buf>,
    previous: Option<Vec<u8>>,
}

impl<'buf> Writer<'buf> {
    /// A writer appending to `out`.
    pub fn new(out: &'buf mut Vec<u8>) -> Self {
        Self { out }
    }

    /// Writes an integer.
    pub fn int(&mut self, n: i64) {
        self.out.push(b'i');
        self.out.extend_from_slice(n.to_string().as_bytes());
        self.out.push(b'e');
    }

    /// Writes a byte string.
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.out
            .extend_from_slice(bytes.len().to_string().as_bytes());
        self.out.push(b':');
        self.out.extend_from_slice(bytes);
    }

    /// Appends bytes that are already one encoded bencode value (a dictionary hashed
    /// before it was embedded, for instance). The caller vouches for them.
    pub fn raw(&mut self, encoded: &[u8]) {
        self.out.extend_from_slice(encoded);
    }

    /// Writes a UTF-8 string as a byte string.
    pub fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Writes a list whose items the closure writes.
    pub fn list<F>(&mut self, items: F) -> Result<(), EncodeError>
    where
        F: FnOnce(&mut Writer<'buf>) -> Result<(), EncodeError>,
    {
        self.out.push(b'l');
        items(self)?;
        self.out.push(b'e');
        Ok(())
    }

    /// Writes a dictionary whose entries the closure writes, keys in ascending order.
    pub fn dict<F>(&mut self, entries: F) -> Result<(), EncodeError>
    where
        F: for<'w> FnOnce(&mut DictWriter<'w, 'buf>) -> Result<(), EncodeError>,
    {
        self.out.push(b'd');
        let mut dict = DictWriter {
            writer: self,
            previous: None,
        };
        entries(&mut dict)?;
        self.out.push(b'e');
        Ok(())
    }
}

impl<'buf> DictWriter<'_, 'buf> {
    /// Writes `key` and returns the writer for its value, which must be written next.
    pub fn key(&mut self, key: &str) -> Result<&mut Writer<'buf>, EncodeError> {
        self.key_bytes(key.as_bytes())
    }

    /// Writes a binary key (an info hash, say) and returns the writer for its value.
    pub fn key_bytes(&mut self, key: &[u8]) -> Result<&mut Writer<'buf>, EncodeError> {
        if let Some(previous) = &self.previous {
            if key <= previous.as_slice() {
                return Err(EncodeError::KeyOrder {
                    key: String::from_utf8_lossy(key).into_owned(),
                    previous: String::from_utf8_lossy(previous).into_owned(),
                });
            }
        }
        self.previous = Some(key.to_vec());
        self.writer.bytes(key);
        Ok(self.writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, Value};
    use proptest::prelude::*;

    #[test]
    fn writes_canonical_dicts() {
        let mut out = Vec::new();
        Writer::new(&mut out)
            .dict(|d| {
                d.key("a")?.int(-3);
                d.key("b")?.list(|l| {
                    l.str("x");
                    l.bytes(&[0, 255]);
                    Ok(())
                })?;
                Ok(())
            })
            .unwrap();
        assert_eq!(out, b"d1:ai-3e1:bl1:x2:\x00\xffee");
    }

    #[test]
    fn refuses_keys_out_of_order() {
        let mut out = Vec::new();
        let err = Writer::new(&mut out)
            .dict(|d| {
                d.key("b")?.int(1);
                d.key("a")?.int(2);
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, EncodeError::KeyOrder { .. }));
    }

    /// An owned value tree for generating inputs.
    #[derive(Debug, Clone)]
    enum Tree {
        Int(i64),
        Bytes(Vec<u8>),
        List(Vec<Tree>),
        Dict(std::collections::BTreeMap<Vec<u8>, Tree>),
    }

    fn tree() -> impl Strategy<Value = Tree> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Tree::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Tree::Bytes),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Tree::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8),
                    inner,
                    0..6
                )
                .prop_map(Tree::Dict),
            ]
        })
    }

    fn write_tree(w: &mut Writer<'_>, tree: &Tree) {
        match tree {
            Tree::Int(n) => w.int(*n),
            Tree::Bytes(b) => w.bytes(b),
            Tree::List(items) => w
                .list(|l| {
                    for item in items {
                        write_tree(l, item);
                    }
                    Ok(())
                })
                .unwrap(),
            Tree::Dict(map) => {
                // Keys may be arbitrary bytes; write them through the raw path.
                w.out.push(b'd');
                for (k, v) in map {
                    w.bytes(k);
                    write_tree(w, v);
                }
                w.out.push(b'e');
            }
        }
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(t in tree()) {
            let mut encoded = Vec::new();
            write_tree(&mut Writer::new(&mut encoded), &t);
            let decoded = decode(&encoded).unwrap();
            let mut again = Vec::new();
            decoded.encode(&mut again);
            prop_assert_eq!(&again, &encoded);
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_an_error(t in tree()) {
            let mut encoded = Vec::new();
            write_tree(&mut Writer::new(&mut encoded), &t);
            for cut in 0..encoded.len() {
                prop_assert!(decode(&encoded[..cut]).is_err());
            }
        }

        #[test]
        fn decoded_dicts_keep_their_source_bytes(t in tree()) {
            let mut encoded = Vec::new();
            write_tree(&mut Writer::new(&mut encoded), &t);
            if let Value::Dict(d) = decode(&encoded).unwrap() {
                prop_assert_eq!(d.encoded(), &encoded[..]);
            }
        }
    }
}
