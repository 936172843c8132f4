//! Fresh names and etags: numbers for folders and projects, UUIDs, and the etags Google
//! puts on resources.

use crate::base::state::State;

/// A fresh 12-digit number not used by any node yet (folder ids, project numbers).
pub(crate) fn new_number(st: &State) -> String {
    use rand::Rng;
    loop {
        let n: u64 = rand::rng().random_range(100_000_000_000..1_000_000_000_000);
        let s = n.to_string();
        let taken = st.organizations.contains_key(&format!("organizations/{s}"))
            || st.folders.contains_key(&format!("folders/{s}"))
            || st.projects.contains_key(&format!("projects/{s}"));
        if !taken {
            return s;
        }
    }
}

/// A fresh etag: 16 hex digits between `prefix` and `suffix`, in the form each API shows
/// (`W/"…"` for Resource Manager's weak etags, `T…` for tags, `CO…` for org policies).
pub(crate) fn etag(prefix: &str, suffix: &str) -> String {
    use rand::Rng;
    format!("{prefix}{:016x}{suffix}", rand::rng().random::<u64>())
}

/// A fresh allow-policy or role etag: Google's are 8 opaque bytes whose base64 starts `BwX`;
/// any unique value serves.
pub(crate) fn policy_etag() -> bytes::Bytes {
    let mut b = [0u8; 8];
    b[0] = 0x07;
    rand::Rng::fill(&mut rand::rng(), &mut b[1..]);
    bytes::Bytes::copy_from_slice(&b)
}

/// A random (version 4) UUID, as Google gives resources' `uid`.
pub(crate) fn uuid4() -> String {
    let mut b = [0u8; 16];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
