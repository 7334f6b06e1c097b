//! Digests made of parts: the one way every key and digest of the engine is hashed.

/// Feed `parts` to `hasher`, each preceded by its length, so that no two different lists of
/// parts hash alike. Every key and digest of the cache is made of parts this way.
pub fn update_parts(hasher: &mut blake3::Hasher, parts: impl IntoIterator<Item = impl AsRef<[u8]>>) {
    for part in parts {
        let part = part.as_ref();
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
}

/// Serde for a 32-byte digest as one byte string (a MessagePack `bin`) instead of a sequence
/// of 32 integers: a 20k-file row index holds ~100k digests, and decoding them element by
/// element was most of the time spent reading it. Use with `#[serde(with = "crate::digest::bytes")]`.
pub mod bytes {
    use serde::{Deserializer, Serializer, de};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(digest)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        struct Digest;
        impl<'de> de::Visitor<'de> for Digest {
            type Value = [u8; 32];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("32 bytes")
            }
            fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<[u8; 32], E> {
                bytes.try_into().map_err(|_| E::invalid_length(bytes.len(), &self))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<[u8; 32], A::Error> {
                let mut out = [0; 32];
                for (i, byte) in out.iter_mut().enumerate() {
                    *byte = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(out)
            }
        }
        deserializer.deserialize_bytes(Digest)
    }
}
