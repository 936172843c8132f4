//! Who a caller is. Runpool is the identity provider for simulated users: a user's token is
//! minted only for the holder of the server's admin credential; tokens are opaque, stored
//! only as SHA-256 hashes, expire after an hour, survive restarts, and are checked on every
//! call.

use crate::base::error::{Error, Result};
use crate::base::state::{Change, TokenKind, TokenRecord};
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
    /// Set alone (the others empty) when an ID token was asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
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

/// A storage failure as the token endpoint says it.
fn server_error(e: Error) -> OAuthError {
    OAuthError {
        error: "server_error",
        error_description: e.message,
    }
}

/// Where a shared store keeps the admin credential every server over it accepts, and the
/// local CA every server's proxy signs with.
const ADMIN_CREDENTIAL_SETTING: &str = "admin_credential";
const LOCAL_CA_SETTING: &str = "local_ca";

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

use crate::base::time::unix_now as now;

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

/// The hosts of the APIs Runpool serves: a self-signed JWT may name any of them as its
/// audience, as Google's clients do (`https://run.googleapis.com/`), since they never see the
/// local endpoint.
pub const API_HOSTS: &[&str] = &[
    "cloudresourcemanager.googleapis.com",
    "orgpolicy.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "run.googleapis.com",
    "oauth2.googleapis.com",
    "recommender.googleapis.com",
    "policytroubleshooter.googleapis.com",
    "logging.googleapis.com",
    "www.googleapis.com",
];

/// The audiences an OAuth assertion may name: Google's token endpoints, or this server's.
const TOKEN_AUDIENCES: &[&str] = &[
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
];

/// Clock skew tolerated on `iat`, as Google's libraries allow.
const SKEW_SECONDS: i64 = 300;

fn short_lived(claims: &serde_json::Value, t: i64) -> bool {
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return false;
    };
    iat <= t + SKEW_SECONDS && exp > t && exp > iat && exp - iat <= 3600
}

/// A JWT whose signature and claims were checked: the account it speaks for and its key.
struct VerifiedJwt {
    member: String,
    key_id: String,
    expires: i64,
    claims: serde_json::Value,
}

impl Control {
    /// Install the server's admin credential (read from or written to the data dir).
    pub fn set_admin_credential(&self, credential: String) {
        let _ = self.admin_credential.set(credential);
    }

    /// The admin credential of a store that several servers share: the one the store holds,
    /// or `mine` (this server's), kept there for the others if it holds none yet. A store only
    /// this server writes answers `mine`.
    pub fn shared_admin_credential(&self, mine: String) -> Result<String> {
        self.shared_setting(ADMIN_CREDENTIAL_SETTING, mine)
    }

    /// The proxy's local CA (its certificate and key, as the proxy writes them) of a store
    /// that several servers share, as [`Control::shared_admin_credential`]: so a client that
    /// trusts one server's CA reaches Google's host names through any of them.
    pub fn shared_local_ca(&self, mine: String) -> Result<String> {
        self.shared_setting(LOCAL_CA_SETTING, mine)
    }

    fn shared_setting(&self, name: &str, mine: String) -> Result<String> {
        if !self.is_shared() {
            return Ok(mine);
        }
        self.write(|st| match st.settings.get(name) {
            Some(held) => Ok((vec![], held.clone())),
            None => Ok((vec![Change::Setting(name.into(), mine.clone())], mine)),
        })
    }

    /// Where this server answers (e.g. `http://127.0.0.1:8484`): key files' `token_uri` and
    /// the audiences of assertions sent to it name it.
    pub fn set_endpoint(&self, endpoint: String) {
        let _ = self.endpoint.set(endpoint);
    }

    pub fn endpoint(&self) -> &str {
        self.endpoint
            .get()
            .map(String::as_str)
            .unwrap_or("http://127.0.0.1:8484")
    }

    /// Verify a JWT signed by a live, enabled user-managed key of a live, enabled account:
    /// signature, `iss` (and `sub`, if present) naming the account, and a short lifetime.
    /// The audience is checked by the caller.
    fn verify_account_jwt(&self, token: &str) -> std::result::Result<VerifiedJwt, &'static str> {
        let kid = crate::base::crypto::jwt_rs256_kid(token).ok_or("not an RS256 JWT")?;
        // The keys to try: the one the header names, or, when it names none, every enabled
        // user-managed key of the account the JWT says issued it.
        let (keys, email) = {
            let st = self.read();
            let keys: Vec<(String, crate::base::state::StoredKey)> = match &kid {
                Some(kid) => st
                    .keys
                    .get(kid)
                    .map(|k| (kid.clone(), k.clone()))
                    .into_iter()
                    .collect(),
                None => {
                    let iss =
                        crate::base::crypto::jwt_unverified_issuer(token).ok_or("no issuer")?;
                    let account = st.account_by_email(&iss).ok_or("no account")?;
                    st.keys
                        .iter()
                        .filter(|(_, k)| {
                            k.account == account.stored.account.unique_id && !k.disabled
                        })
                        .map(|(id, k)| (id.clone(), k.clone()))
                        .collect()
                }
            };
            let keys: Vec<_> = keys
                .into_iter()
                .filter(|(_, k)| k.user_managed && !k.account.is_empty())
                .collect();
            let first = keys.first().ok_or("unknown key")?;
            let acct = st
                .service_accounts
                .get(&first.1.account)
                .filter(|a| a.deleted_at.is_none())
                .ok_or("no account")?;
            if acct.account.disabled || keys.iter().all(|(_, k)| k.disabled) {
                return Err("disabled");
            }
            (keys, acct.account.email.clone())
        };
        let (kid, claims) = keys
            .iter()
            .filter(|(_, k)| !k.disabled)
            .find_map(|(id, k)| {
                crate::base::crypto::verify_jwt(token, &k.public)
                    .ok()
                    .map(|c| (id.clone(), c))
            })
            .ok_or("signature")?;
        if claims["iss"].as_str() != Some(email.as_str())
            || claims
                .get("sub")
                .is_some_and(|s| s.as_str() != Some(email.as_str()))
        {
            return Err("issuer");
        }
        if !short_lived(&claims, now()) {
            return Err("time");
        }
        Ok(VerifiedJwt {
            member: format!("serviceAccount:{email}"),
            key_id: kid,
            expires: claims["exp"].as_i64().unwrap_or(0),
            claims,
        })
    }

    /// A self-signed JWT used as a bearer token (what Google's clients send when given a key
    /// file). Verified once, then remembered by hash until it expires.
    fn authenticate_jwt(&self, token: &str) -> Result<Caller> {
        let h = hash(token);
        let cached = self
            .jwt_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&h)
            .cloned();
        if let Some((member, expires, key_id)) = cached
            && expires > now()
        {
            self.check_live(&member, Some(&key_id))?;
            return Ok(self.caller(&member));
        }
        let v = self
            .verify_account_jwt(token)
            .map_err(|_| invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED"))?;
        let aud_ok = match v.claims.get("aud") {
            Some(serde_json::Value::String(aud)) => {
                let host = aud.trim_start_matches("https://").trim_end_matches('/');
                API_HOSTS.contains(&host) || aud.trim_end_matches('/') == self.endpoint()
            }
            _ => v
                .claims
                .get("scope")
                .and_then(|s| s.as_str())
                .is_some_and(|s| !s.is_empty()),
        };
        if !aud_ok {
            return Err(invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED"));
        }
        let mut cache = self.jwt_cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(h, (v.member.clone(), v.expires, v.key_id));
        Ok(self.caller(&v.member))
    }

    /// A token stands only while its account is live and enabled and the key it came from
    /// (if any) still exists and is enabled: revocation is immediate.
    fn check_live(&self, member: &str, key_id: Option<&str>) -> Result<()> {
        let st = self.read();
        if let Some(email) = member.strip_prefix("serviceAccount:")
            && crate::iam::serviceaccounts::is_simulated_account(email)
        {
            let live = st
                .account_by_email(email)
                .is_some_and(|a| !a.stored.account.disabled);
            if !live {
                return Err(invalid("ACCOUNT_STATE_INVALID"));
            }
        }
        if let Some(k) = key_id
            && st.keys.get(k).is_none_or(|k| k.disabled)
        {
            return Err(invalid("ACCESS_TOKEN_EXPIRED"));
        }
        Ok(())
    }

    /// Store a new access token for `member`.
    pub(crate) fn issue_access(
        &self,
        member: &str,
        lifetime: i64,
        key_id: Option<String>,
        with_refresh: bool,
        workload: Option<String>,
    ) -> Result<TokenResponse> {
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
                    expires: t + lifetime,
                    kind: TokenKind::Access,
                    key_id: key_id.clone(),
                    workload: workload.clone(),
                }),
            ));
            if let Some(r) = &refresh {
                changes.push(Change::Token(
                    hash(r),
                    Some(TokenRecord {
                        member: member.to_string(),
                        expires: t + REFRESH_TOKEN_SECONDS,
                        kind: TokenKind::Refresh,
                        key_id: None,
                        workload: None,
                    }),
                ));
            }
            Ok((changes, ()))
        })?;
        Ok(TokenResponse {
            access_token: access,
            expires_in: lifetime,
            token_type: "Bearer",
            refresh_token: refresh,
            id_token: None,
        })
    }

    /// Refuse unless `presented` is the server's admin credential; `what` (e.g. "Minting a
    /// user's token") names the act in the refusal.
    pub fn require_admin(&self, presented: Option<&str>, what: &str) -> Result<()> {
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
                format!("{what} needs the server's admin credential."),
            ));
        }
        Ok(())
    }

    /// Mint a simulated user's tokens; `presented` must be the admin credential.
    pub fn mint_user_token(&self, presented: Option<&str>, email: &str) -> Result<TokenResponse> {
        self.require_admin(presented, "Minting a user's token")?;
        let email = user_email(email)?;
        self.issue_access(
            &format!("user:{email}"),
            ACCESS_TOKEN_SECONDS,
            None,
            true,
            None,
        )
    }

    /// Whether `presented` is the server's admin credential.
    pub(crate) fn is_admin_credential(&self, presented: &str) -> bool {
        self.admin_credential
            .get()
            .is_some_and(|c| same_secret(c, presented))
    }

    /// A fresh session (access and refresh token) for a principal who has just proven who it
    /// is (a sign-in code, see [`crate::iam::signin`]). It grants nothing the principal did not
    /// already hold.
    pub(crate) fn session_token(&self, member: &str) -> Result<TokenResponse> {
        self.check_live(member, None)?;
        self.issue_access(member, ACCESS_TOKEN_SECONDS, None, true, None)
    }

    /// The OAuth `refresh_token` grant.
    pub fn refresh(&self, refresh_token: &str) -> std::result::Result<TokenResponse, OAuthError> {
        self.catch_up().map_err(server_error)?;
        let record = self.read().tokens.get(&hash(refresh_token)).cloned();
        match record {
            Some(r) if r.kind == TokenKind::Refresh && r.expires > now() => self
                .issue_access(&r.member, ACCESS_TOKEN_SECONDS, None, false, None)
                .map_err(server_error),
            _ => Err(OAuthError {
                error: "invalid_grant",
                error_description: "Token has been expired or revoked.".to_string(),
            }),
        }
    }

    /// Google's `oauth2.googleapis.com/revoke`: the access or refresh token is no longer
    /// accepted, by any server over the store.
    pub fn revoke(&self, token: &str) -> std::result::Result<(), OAuthError> {
        let h = hash(token);
        let revoked = self
            .write(|st| match st.tokens.contains_key(&h) {
                true => Ok((vec![Change::Token(h.clone(), None)], true)),
                false => Ok((vec![], false)),
            })
            .map_err(server_error)?;
        revoked.then_some(()).ok_or_else(|| OAuthError {
            error: "invalid_token",
            error_description: "Token expired or revoked".to_string(),
        })
    }

    /// The OAuth JWT-bearer grant: an assertion signed by a key of the account, for an access
    /// token (`scope`) or an ID token (`target_audience`).
    pub fn jwt_bearer(&self, assertion: &str) -> std::result::Result<TokenResponse, OAuthError> {
        let grant_error = |d: &str| OAuthError {
            error: "invalid_grant",
            error_description: d.to_string(),
        };
        let v = self.verify_account_jwt(assertion).map_err(|why| match why {
            "time" => grant_error("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim."),
            "signature" => grant_error("Invalid JWT Signature."),
            "disabled" | "no account" => grant_error("Invalid grant: account not found"),
            _ => grant_error("Invalid JWT Signature."),
        })?;
        let aud = v.claims["aud"].as_str().unwrap_or_default();
        if !TOKEN_AUDIENCES.contains(&aud) && aud != format!("{}/token", self.endpoint()) {
            return Err(grant_error("Invalid JWT: Failed audience check."));
        }
        if let Some(audience) = v.claims["target_audience"].as_str() {
            let email = v.member.trim_start_matches("serviceAccount:");
            let token = self
                .id_token(email, audience, true)
                .map_err(|e| OAuthError {
                    error: "server_error",
                    error_description: e.message,
                })?;
            return Ok(TokenResponse {
                access_token: String::new(),
                expires_in: 0,
                token_type: "Bearer",
                refresh_token: None,
                id_token: Some(token),
            });
        }
        if v.claims["scope"].as_str().is_none_or(str::is_empty) {
            return Err(OAuthError {
                error: "invalid_scope",
                error_description: "Empty or missing scope not allowed.".to_string(),
            });
        }
        self.issue_access(&v.member, ACCESS_TOKEN_SECONDS, Some(v.key_id), false, None)
            .map_err(|e| OAuthError {
                error: "server_error",
                error_description: e.message,
            })
    }

    /// For `tokeninfo`: the member and remaining seconds of a live opaque access token.
    pub fn token_info(&self, token: &str) -> Option<(String, i64)> {
        if let Err(e) = self.catch_up() {
            tracing::warn!(error = %e, "tokeninfo cannot catch up with the database");
            return None;
        }
        let r = self.read().tokens.get(&hash(token)).cloned()?;
        let left = r.expires - now();
        (r.kind == TokenKind::Access
            && left > 0
            && self.check_live(&r.member, r.key_id.as_deref()).is_ok())
        .then_some((r.member, left))
    }

    /// Authenticate a request's bearer token: an opaque token Runpool issued, or a JWT
    /// self-signed by a service account key.
    pub fn authenticate(&self, bearer: Option<&str>) -> Result<Caller> {
        // Over a shared database, what any server acknowledged (a revoked token, a deleted
        // key) is seen before the token is judged.
        self.catch_up()?;
        let token = bearer
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(missing)?;
        if token.starts_with("eyJ") && token.matches('.').count() == 2 {
            return self.authenticate_jwt(token);
        }
        let record = self.read().tokens.get(&hash(token)).cloned();
        match record {
            Some(r) if r.kind == TokenKind::Access && r.expires > now() => {
                self.check_live(&r.member, r.key_id.as_deref())?;
                let mut caller = self.caller(&r.member);
                caller.workload = r.workload;
                Ok(caller)
            }
            Some(r) if r.kind == TokenKind::Access => Err(invalid("ACCESS_TOKEN_EXPIRED")),
            _ => Err(invalid("ACCESS_TOKEN_TYPE_UNSUPPORTED")),
        }
    }
}
