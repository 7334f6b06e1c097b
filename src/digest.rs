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
