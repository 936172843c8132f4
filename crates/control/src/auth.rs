//! Who a caller is. Runpool is the identity provider for simulated users: a user's token is
//! minted only for the holder of the server's admin credential; tokens are opaque, stored
//! only as SHA-256 hashes, expire after an hour, survive restarts, and are checked on every
//! call.

use crate::error::{Error, Result};
use crate::state::{Change, TokenKind, TokenRecord};
use crate::{Caller, Control};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Access tokens live one hour, as Google's do.
pub const ACCESS_TOKEN_SECONDS: i64 = 3600;
/// Refresh tokens let `runpool auth print-access-token` renew without the admin credential.
pub const REFRESH_TOKEN_SECONDS: i64 = 30 * 24 * 3600;

/// What `/runpool/v1/tokens` and the `/token` refresh grant answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// An OAuth 2.0 error (`{"error","error_description"}`), as Google's token endpoint sends.
#[derive(Debug, Clone, serde::Serialize)]
pub struct OAuthError {
    pub error: &'static str,
    pub error_description: String,
}

fn random_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    format!(
        "{prefix}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    )
}

pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh admin credential (what `serve` writes into the data dir at first start).
pub fn new_admin_credential() -> String {
    random_token("rpa.")
}

/// Compare secrets without leaking where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn missing() -> Error {
    Error::new(
        crate::Code::Unauthenticated,
        "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )
    .with_info("CREDENTIALS_MISSING", "googleapis.com", [])
}

fn invalid(reason: &str) -> Error {
    Error::new(
        crate::Code::Unauthenticated,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
    )
    .with_info(reason, "googleapis.com", [])
}

/// Validate an email for a simulated user.
fn user_email(email: &str) -> Result<String> {
    let e = email.trim().to_lowercase();
    let valid = e
        .split_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !e.contains(char::is_whitespace);
    if !valid {
        return Err(Error::invalid(format!(
            "Invalid principal email '{email}'."
        )));
    }
    if e.ends_with(".gserviceaccount.com") {
        return Err(Error::invalid(format!(
            "'{email}' is a service account: obtain its tokens with a key or through impersonation, not as a user."
        )));
    }
    Ok(e)
}

impl Control {
    /// Install the server's admin credential (read from or written to the data dir).
    pub fn set_admin_credential(&self, credential: String) {
        let _ = self.admin_credential.set(credential);
    }

    fn issue(&self, member: &str, with_refresh: bool) -> Result<TokenResponse> {
        let access = random_token("ya29.rp.");
        let refresh = with_refresh.then(|| random_token("1//rp."));
        let t = now();
        self.write(|st| {
            // Purge expired tokens as we go so the table stays small.
            let mut changes: Vec<Change> = st
                .tokens
                .iter()
                .filter(|(_, r)| r.expires < t)
                .take(64)
                .map(|(h, _)| Change::Token(h.clone(), None))
                .collect();
            changes.push(Change::Token(
                hash(&access),
                Some(TokenRecord {
                    member: member.to_string(),
                    expires: t + ACCESS_TOKEN_SECONDS,
                    kind: TokenKind::Access,
                }),
            ));
            if let Some(r) = &refresh {
                changes.push(Change::Token(
                    hash(r),
                    Some(TokenRecord {
                        member: member.to_string(),
                        expires: t + REFRESH_TOKEN_SECONDS,
                        kind: TokenKind::Refresh,
                    }),
                ));
            }
            Ok((changes, ()))
        })?;
        Ok(TokenResponse {
            access_token: access,
            expires_in: ACCESS_TOKEN_SECONDS,
            token_type: "Bearer",
            refresh_token: refresh,
        })
    }

    /// Mint a simulated user's tokens; `presented` must be the admin credential.
    pub fn mint_user_token(&self, presented: Option<&str>, email: &str) -> Result<TokenResponse> {
        let Some(presented) = presented else {
            return Err(missing());
        };
        let ok = self
            .admin_credential
            .get()
            .is_some_and(|c| same_secret(c, presented));
        if !ok {
            return Err(Error::new(
                crate::Code::PermissionDenied,
                "Minting a user's token needs the server's admin credential.",
            ));
        }
        let email = user_email(email)?;
        self.issue(&format!("user:{email}"), true)
    }

    /// The OAuth `refresh_token` grant.
    pub fn refresh(&self, refresh_token: &str) -> std::result::Result<TokenResponse, OAuthError> {
        let record = self.read().tokens.get(&hash(refresh_token)).cloned();
        match record {
            Some(r) if r.kind == TokenKind::Refresh && r.expires > now() => {
                self.issue(&r.member, false).map_err(|e| OAuthError {
                    error: "server_error",
                    error_description: e.message,
                })
            }
            _ => Err(OAuthError {
                error: "invalid_grant",
                error_description: "Token has been expired or revoked.".to_string(),
            }),
        }
    }

    /// Authenticate a request's bearer token.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Caller> {
        let token = bearer
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(missing)?;
        let record = self.read().tokens.get(&hash(token)).cloned();
        match record {
            Some(r) if r.kind == TokenKind::Access && r.expires > now() => {
                Ok(self.caller(&r.member))
            }
            Some(r) if r.kind == TokenKind::Access => Err(invalid("ACCESS_TOKEN_EXPIRED")),
            _ => Err(invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED")),
        }
    }
}
