//! The digest statusmotd takes to tell the same bytes again: each answer
//! as it arrives, a `--snapshot` file, the configuration and templates, and
//! every file it writes. BLAKE3, a cryptographic hash that is about three
//! times as fast as SHA-256 on one core (BENCHMARKS.md measures both on the
//! same machine): a one-shot `render` hashes a megabyte of answers between
//! the last byte and its exit.
//!
//! What others check keeps SHA-256: the HMAC-SHA256 signature of webhook
//! deliveries and the notification ids.

/// A digest of some bytes.
pub type Hash = [u8; 32];

/// The digest of `bytes`.
pub fn of(bytes: &[u8]) -> Hash {
    *blake3::hash(bytes).as_bytes()
}

/// A digest taken piece by piece: the same as [`of`] the pieces joined.
/// Boxed: BLAKE3's state is about 2 KB, which would otherwise be held in
/// every future reading an answer.
#[derive(Default)]
pub struct Hasher(Box<blake3::Hasher>);

impl Hasher {
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finalize(&self) -> Hash {
        *self.0.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_taken_in_pieces_is_the_digest_of_the_whole() {
        let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut hasher = Hasher::default();
        for piece in bytes.chunks(4_093) {
            hasher.update(piece);
        }
        assert_eq!(hasher.finalize(), of(&bytes));
        assert_ne!(of(&bytes[1..]), of(&bytes));
    }
}
