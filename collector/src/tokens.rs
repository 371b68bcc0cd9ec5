//! Agent bearer tokens: generation, hashing and constant-time matching.
//!
//! A token is 32 random bytes, hex-encoded, shown to the operator once.
//! The collector keeps only its SHA-256, so a leaked database does not leak
//! credentials, and compares hashes without early exit so response timing
//! says nothing about how close a forged token came.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of randomness in a token (hex doubles the length).
pub const TOKEN_BYTES: usize = 32;

/// A fresh random token, hex-encoded (64 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The SHA-256 of a token, hex-encoded: what the store keeps.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Index of the candidate whose stored hash equals `token_hash`.
///
/// Every candidate is compared in full, whatever matched before, so the time
/// taken depends only on the number of candidates.
pub fn find_match<'a, I>(token_hash: &str, candidates: I) -> Option<usize>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut found: Option<usize> = None;
    for (i, stored) in candidates.into_iter().enumerate() {
        // ct_eq on slices of different lengths is false (and not secret:
        // every stored hash has the same length).
        let eq: bool = token_hash.as_bytes().ct_eq(stored.as_bytes()).into();
        if eq && found.is_none() {
            found = Some(i);
        }
    }
    found
}

/// The token in an `Authorization: Bearer <token>` header value.
pub fn bearer(header_value: &str) -> Option<&str> {
    let (scheme, rest) = header_value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_of_the_right_length() {
        let a = generate();
        let b = generate();
        assert_eq!(a.len(), TOKEN_BYTES * 2);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn hash_is_sha256_hex() {
        // SHA-256("abc"), FIPS 180-2 test vector.
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash("abc"), hash("abd"));
    }

    #[test]
    fn find_match_finds_only_equal_hashes() {
        let t = generate();
        let h = hash(&t);
        let other = hash(&generate());
        let stored = [other.as_str(), h.as_str(), "short"];
        assert_eq!(find_match(&h, stored), Some(1));
        assert_eq!(find_match(&hash("forged"), stored), None);
        assert_eq!(find_match(&h, []), None);
        // A token is not its own hash.
        assert_eq!(find_match(&t, stored), None);
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }
}
