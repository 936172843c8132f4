//! One-time sign-in codes: how `runpool console` signs a browser in as the CLI's account.
//!
//! An authenticated caller asks for a code (good for [`CODE_SECONDS`], once); whoever presents
//! it gets a fresh session (access and refresh token) of that same principal, and nothing more.
//! A caller that also proves it holds the server's admin credential may attach it, so that the
//! session can mint simulated users' tokens as `runpool auth login` does. Codes are kept in the
//! store as SHA-256 hashes (so every server over a shared database redeems them, once), and an
//! expired one is purged as new ones are issued.

use crate::base::error::{Code, Error, Result};
use crate::base::state::{Change, SigninCode};
use crate::base::time::unix_now as now;
use crate::iam::auth::{TokenResponse, hash};
use crate::{Caller, Control};
use base64::Engine;

/// How long a sign-in code may wait for its one use.
pub const CODE_SECONDS: i64 = 300;

/// What a redeemed code gives: the session, whose it is, and the admin credential if the code
/// carried it.
pub struct Session {
    pub token: TokenResponse,
    pub member: String,
    pub admin_credential: Option<String>,
}

impl Control {
    /// A new code for the caller, with the admin credential attached when `admin_credential`
    /// is given (and is this server's).
    pub fn issue_signin_code(
        &self,
        caller: &Caller,
        admin_credential: Option<&str>,
    ) -> Result<String> {
        let admin = match admin_credential.filter(|c| !c.is_empty()) {
            None => false,
            Some(c) if self.is_admin_credential(c) => true,
            Some(_) => {
                return Err(Error::new(
                    Code::PermissionDenied,
                    "The adminCredential given is not this server's admin credential.",
                ));
            }
        };
        let mut b = [0u8; 32];
        rand::Rng::fill(&mut rand::rng(), &mut b);
        let code = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let t = now();
        self.write(|st| {
            let mut changes: Vec<Change> = st
                .signin_codes
                .iter()
                .filter(|(_, c)| c.expires <= t)
                .take(64)
                .map(|(h, _)| Change::SigninCode(h.clone(), None))
                .collect();
            changes.push(Change::SigninCode(
                hash(&code),
                Some(SigninCode {
                    member: caller.member.clone(),
                    admin,
                    expires: t + CODE_SECONDS,
                }),
            ));
            Ok((changes, ()))
        })?;
        Ok(code)
    }

    /// Trade a code, once, for a session of its principal; `None` for a used, expired or
    /// unknown code.
    pub fn redeem_signin_code(&self, code: &str) -> Option<Result<Session>> {
        let h = hash(code);
        let taken = self.write(|st| match st.signin_codes.get(&h) {
            Some(c) => Ok((vec![Change::SigninCode(h.clone(), None)], Some(c.clone()))),
            None => Ok((vec![], None)),
        });
        let c = match taken {
            Ok(c) => c.filter(|c| c.expires > now())?,
            Err(e) => return Some(Err(e)),
        };
        Some(self.session_token(&c.member).map(|token| Session {
            token,
            member: c.member,
            admin_credential: if c.admin {
                self.admin_credential.get().cloned()
            } else {
                None
            },
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::store::SqliteStore;
    use crate::world::World;

    fn control() -> (tempfile::TempDir, Control, Caller) {
        let dir = tempfile::tempdir().unwrap();
        let c = Control::open(Box::new(
            SqliteStore::open(&dir.path().join("runpool.db")).unwrap(),
        ))
        .unwrap();
        c.seed(&World::default_world()).unwrap();
        c.set_admin_credential("cred".into());
        let caller = c.caller("user:alice@example.com");
        (dir, c, caller)
    }

    #[test]
    fn a_code_is_good_once_and_only_for_its_principal() {
        let (_dir, c, alice) = control();
        let code = c.issue_signin_code(&alice, None).unwrap();
        let s = c.redeem_signin_code(&code).unwrap().unwrap();
        assert_eq!(s.member, "user:alice@example.com");
        assert!(s.admin_credential.is_none());
        assert!(c.redeem_signin_code(&code).is_none());
        assert!(c.redeem_signin_code("made-up").is_none());
        assert!(c.issue_signin_code(&alice, Some("not-it")).is_err());
        let code = c.issue_signin_code(&alice, Some("cred")).unwrap();
        let s = c.redeem_signin_code(&code).unwrap().unwrap();
        assert_eq!(s.admin_credential.as_deref(), Some("cred"));
    }

    #[test]
    fn an_expired_code_is_refused() {
        let (_dir, c, alice) = control();
        let code = c.issue_signin_code(&alice, None).unwrap();
        c.write(|st| {
            let (h, mut p) = st
                .signin_codes
                .iter()
                .next()
                .map(|(h, p)| (h.clone(), p.clone()))
                .unwrap();
            p.expires = now() - 1;
            Ok((vec![Change::SigninCode(h, Some(p))], ()))
        })
        .unwrap();
        assert!(c.redeem_signin_code(&code).is_none());
    }
}
