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

/// A set of module names as 32-bit FNV-1a hashes, sorted: the names a file's cross-module
/// values asked the module index about (see `rows::CrossModule::probes`). Membership may
/// answer yes for a name never asked (a collision): that only re-keys a file for nothing.
/// Serialized as one byte string (4 bytes per name, little-endian).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameSet(Vec<u32>);

impl NameSet {
    pub fn hash(name: &str) -> u32 {
        let mut hash: u32 = 0x811c_9dc5;
        for byte in name.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
        hash
    }

    pub fn of<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let mut hashes: Vec<u32> = names.into_iter().map(Self::hash).collect();
        hashes.sort_unstable();
        hashes.dedup();
        NameSet(hashes)
    }

    /// Whether one of this set's hashes is in `hashes`.
    pub fn meets(&self, hashes: &std::collections::HashSet<u32>) -> bool {
        self.0.iter().any(|h| hashes.contains(h))
    }
}

impl serde::Serialize for NameSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|h| h.to_le_bytes()).collect();
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de> serde::Deserialize<'de> for NameSet {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Hashes;
        impl serde::de::Visitor<'_> for Hashes {
            type Value = NameSet;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string of 4-byte hashes")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<NameSet, E> {
                if bytes.len() % 4 != 0 {
                    return Err(E::invalid_length(bytes.len(), &self));
                }
                Ok(NameSet(bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect()))
            }
        }
        deserializer.deserialize_bytes(Hashes)
    }
}

#[cfg(test)]
mod tests {
    use super::NameSet;

    #[test]
    fn name_sets_round_trip_and_meet() {
        let set = NameSet::of(["pkg.a", "pkg", "pkg.a"]);
        let bytes = rmp_serde::to_vec(&set).unwrap();
        assert_eq!(rmp_serde::from_slice::<NameSet>(&bytes).unwrap(), set);
        let hashes = |names: &[&str]| names.iter().map(|n| NameSet::hash(n)).collect();
        assert!(set.meets(&hashes(&["pkg.a"])));
        assert!(!set.meets(&hashes(&["pkg.b", "other"])));
    }
}
