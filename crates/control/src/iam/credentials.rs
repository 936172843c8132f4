//! Credentials of service accounts: keys (created, uploaded, listed, disabled, deleted), the
//! IAM Credentials API (`generateAccessToken`, `generateIdToken`, `signBlob`, `signJwt`,
//! with `delegates` chains), ID tokens, and the certificates that verify them.

use crate::base::crypto::{self, PublicKey};
use crate::base::error::{Code, Error, Result};
use crate::base::state::{Change, StoredKey};
use crate::iam::serviceaccounts::Account;
use crate::{Caller, Control};
use google_cloud_iam_admin_v1::model::{
    ServiceAccountKey, ServiceAccountKeyAlgorithm, ServiceAccountKeyOrigin,
    ServiceAccountPrivateKeyType, list_service_account_keys_request::KeyType,
};
use serde_json::{Value, json};

pub const CREDENTIALS_SERVICE: &str = "iamcredentials.googleapis.com";
/// Google's ceiling for user-managed keys per account.
pub const MAX_KEYS: usize = 10;
/// `validBeforeTime` of a key that never expires, as Google writes it.
const FOREVER: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
/// Access tokens from `generateAccessToken` may live this long at most, or 12 h for accounts
/// listed in `iam.allowServiceAccountCredentialLifetimeExtension`.
const MAX_LIFETIME: i64 = 3600;
const EXTENDED_LIFETIME: i64 = 43_200;

fn ts(secs: i64) -> google_cloud_wkt::Timestamp {
    google_cloud_wkt::Timestamp::new(secs, 0).unwrap_or_default()
}

use crate::base::time::unix_now as now;

impl Control {
    fn key_wire(&self, a: &Account, k: &StoredKey, with_public: bool) -> ServiceAccountKey {
        let mut w = ServiceAccountKey::new();
        w.name = format!(
            "projects/{}/serviceAccounts/{}/keys/{}",
            a.stored.account.project_id,
            a.email(),
            k.key_id
        );
        w.key_algorithm = ServiceAccountKeyAlgorithm::KeyAlgRsa2048;
        w.valid_after_time = Some(ts(k.valid_after));
        w.valid_before_time = Some(ts(k.valid_before));
        w.key_origin = if k.uploaded {
            ServiceAccountKeyOrigin::UserProvided
        } else {
            ServiceAccountKeyOrigin::GoogleProvided
        };
        w.key_type = if k.user_managed {
            KeyType::UserManaged
        } else {
            KeyType::SystemManaged
        };
        w.disabled = k.disabled;
        if with_public {
            w.public_key_data = bytes::Bytes::from(k.public.cert_pem.clone().into_bytes());
        }
        w
    }

    /// The Google key file for a new key: what `privateKeyData` carries, base64-encoded.
    fn key_file(&self, a: &Account, key_id: &str, private_pem: &str) -> Value {
        let email = a.email();
        let endpoint = self.endpoint();
        json!({
            "type": "service_account",
            "project_id": a.stored.account.project_id,
            "private_key_id": key_id,
            "private_key": private_pem,
            "client_email": email,
            "client_id": a.stored.account.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": format!("{endpoint}/token"),
            "auth_provider_x509_cert_url": format!("{endpoint}/oauth2/v1/certs"),
            "client_x509_cert_url": format!("{endpoint}/robot/v1/metadata/x509/{}", email.replace('@', "%40")),
            "universe_domain": "googleapis.com",
        })
    }

    fn user_keys_of(&self, a: &Account) -> Vec<StoredKey> {
        self.read()
            .keys
            .values()
            .filter(|k| k.account == a.stored.account.unique_id)
            .cloned()
            .collect()
    }

    fn add_user_key(&self, a: &Account, key: StoredKey) -> Result<()> {
        self.write(|st| {
            let count = st
                .keys
                .values()
                .filter(|k| k.account == key.account && k.user_managed)
                .count();
            if count >= MAX_KEYS {
                return Err(Error::failed_precondition(format!(
                    "Precondition check failed: service account {} already has {MAX_KEYS} keys.",
                    a.email()
                )));
            }
            Ok((vec![Change::Key(key.key_id.clone(), Some(key))], ()))
        })
    }

    /// `keys.create`: a new RSA key; the private key goes back to the caller once, inside a
    /// Google key file, and is never stored.
    pub fn create_key(
        &self,
        caller: &Caller,
        name: &str,
        key_type: ServiceAccountPrivateKeyType,
    ) -> Result<ServiceAccountKey> {
        let perm = "iam.serviceAccountKeys.create";
        let a = self.account(caller, name, perm)?;
        self.authorize(caller, perm, &a.target())?;
        if key_type == ServiceAccountPrivateKeyType::TypePkcs12File {
            return Err(Error::invalid(
                "PKCS#12 key files are not supported; use TYPE_GOOGLE_CREDENTIALS_FILE.",
            ));
        }
        if self.is_enforced(
            &format!("projects/{}", a.project_number),
            "iam.disableServiceAccountKeyCreation",
        ) {
            return Err(Error::failed_precondition(
                "Key creation is not allowed on this service account.",
            )
            .with_info(
                "CONSTRAINT_VIOLATED",
                "iam.googleapis.com",
                [(
                    "constraint",
                    "constraints/iam.disableServiceAccountKeyCreation",
                )],
            ));
        }
        let generated = crypto::generate(a.email())?;
        let key_id = crypto::new_key_id();
        let stored = StoredKey {
            key_id: key_id.clone(),
            account: a.stored.account.unique_id.clone(),
            public: generated.public,
            valid_after: now(),
            valid_before: FOREVER,
            user_managed: true,
            uploaded: false,
            disabled: false,
            private_pem: None,
        };
        self.add_user_key(&a, stored.clone())?;
        let mut w = self.key_wire(&a, &stored, false);
        w.private_key_type = ServiceAccountPrivateKeyType::TypeGoogleCredentialsFile;
        let file = self.key_file(&a, &key_id, &generated.private_pem);
        w.private_key_data =
            bytes::Bytes::from(serde_json::to_vec_pretty(&file).unwrap_or_default());
        Ok(w)
    }

    /// `keys.upload`: the caller keeps the private key; only the certificate is stored.
    pub fn upload_key(
        &self,
        caller: &Caller,
        name: &str,
        public_key_data: &[u8],
    ) -> Result<ServiceAccountKey> {
        let perm = "iam.serviceAccountKeys.create";
        let a = self.account(caller, name, perm)?;
        self.authorize(caller, perm, &a.target())?;
        let pem = std::str::from_utf8(public_key_data).map_err(|_| {
            Error::invalid("The public key data is not a valid X.509 PEM certificate.")
        })?;
        let public = crypto::public_from_cert(pem)?;
        let key_id = crypto::new_key_id();
        let stored = StoredKey {
            key_id,
            account: a.stored.account.unique_id.clone(),
            public,
            valid_after: now(),
            valid_before: FOREVER,
            user_managed: true,
            uploaded: true,
            disabled: false,
            private_pem: None,
        };
        self.add_user_key(&a, stored.clone())?;
        Ok(self.key_wire(&a, &stored, false))
    }

    pub fn list_keys(
        &self,
        caller: &Caller,
        name: &str,
        types: &[KeyType],
    ) -> Result<Vec<ServiceAccountKey>> {
        let perm = "iam.serviceAccountKeys.list";
        let a = self.account(caller, name, perm)?;
        self.authorize(caller, perm, &a.target())?;
        let want = |k: &StoredKey| {
            let t = if k.user_managed {
                KeyType::UserManaged
            } else {
                KeyType::SystemManaged
            };
            types.is_empty() || types.contains(&t)
        };
        Ok(self
            .user_keys_of(&a)
            .iter()
            .filter(|k| want(k))
            .map(|k| self.key_wire(&a, k, false))
            .collect())
    }

    fn key_of(&self, caller: &Caller, name: &str, perm: &str) -> Result<(Account, StoredKey)> {
        let (sa, key_id) = name
            .rsplit_once("/keys/")
            .ok_or_else(|| Error::invalid(format!("Invalid key name '{name}'.")))?;
        let a = self.account(caller, sa, perm)?;
        self.authorize(caller, perm, &a.target())?;
        let k = self
            .read()
            .keys
            .get(key_id)
            .filter(|k| k.account == a.stored.account.unique_id)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!("Service account key {key_id} does not exist."))
            })?;
        Ok((a, k))
    }

    /// `keys.get`: the public key only.
    pub fn get_key(&self, caller: &Caller, name: &str) -> Result<ServiceAccountKey> {
        let (a, k) = self.key_of(caller, name, "iam.serviceAccountKeys.get")?;
        Ok(self.key_wire(&a, &k, true))
    }

    /// `keys.delete`: every token the key obtained, and every JWT it signed, fails from now.
    pub fn delete_key(&self, caller: &Caller, name: &str) -> Result<()> {
        let (_, k) = self.key_of(caller, name, "iam.serviceAccountKeys.delete")?;
        self.write(|_| Ok((vec![Change::Key(k.key_id.clone(), None)], ())))
    }

    pub fn set_key_disabled(&self, caller: &Caller, name: &str, disabled: bool) -> Result<()> {
        let perm = if disabled {
            "iam.serviceAccountKeys.disable"
        } else {
            "iam.serviceAccountKeys.enable"
        };
        let (_, mut k) = self.key_of(caller, name, perm)?;
        k.disabled = disabled;
        self.write(|_| Ok((vec![Change::Key(k.key_id.clone(), Some(k))], ())))
    }

    /// The key the server signs ID tokens with, created on first use (not at start: making an
    /// RSA key costs more time and memory than the rest of the start).
    pub fn ensure_signing_key(&self) -> Result<StoredKey> {
        if let Some(k) = self.read().keys.values().find(|k| k.account.is_empty()) {
            return Ok(k.clone());
        }
        let g = crypto::generate("runpool-id-token-signer")?;
        let k = StoredKey {
            key_id: crypto::new_key_id(),
            account: String::new(),
            public: g.public,
            valid_after: now(),
            valid_before: FOREVER,
            user_managed: false,
            uploaded: false,
            disabled: false,
            private_pem: Some(g.private_pem),
        };
        // Generated outside the write lock; if another caller stored one meanwhile, use
        // theirs so there is one signing key.
        self.write(|st| match st.keys.values().find(|k| k.account.is_empty()) {
            Some(existing) => Ok((vec![], existing.clone())),
            None => Ok((
                vec![Change::Key(k.key_id.clone(), Some(k.clone()))],
                k.clone(),
            )),
        })
    }

    /// The account's system-managed key (what `signBlob`/`signJwt` sign with), created on
    /// first use and held by the server, as Google holds it.
    fn system_key(&self, a: &Account) -> Result<StoredKey> {
        let uid = &a.stored.account.unique_id;
        if let Some(k) = self
            .read()
            .keys
            .values()
            .find(|k| &k.account == uid && !k.user_managed)
        {
            return Ok(k.clone());
        }
        let g = crypto::generate(a.email())?;
        let k = StoredKey {
            key_id: crypto::new_key_id(),
            account: uid.clone(),
            public: g.public,
            valid_after: now(),
            valid_before: FOREVER,
            user_managed: false,
            uploaded: false,
            disabled: false,
            private_pem: Some(g.private_pem),
        };
        self.write(|_| {
            Ok((
                vec![Change::Key(k.key_id.clone(), Some(k.clone()))],
                k.clone(),
            ))
        })
    }

    /// An ID token for an account, signed by the server's key, with Google's claims.
    pub fn id_token(&self, email: &str, audience: &str, include_email: bool) -> Result<String> {
        let a = self
            .read()
            .account_by_email(email)
            .ok_or_else(|| Error::not_found(format!("Service account {email} does not exist.")))?;
        let signer = self.ensure_signing_key()?;
        let t = now();
        let uid = &a.stored.account.unique_id;
        let mut claims = json!({
            "iss": "https://accounts.google.com",
            "aud": audience,
            "azp": uid,
            "sub": uid,
            "iat": t,
            "exp": t + 3600,
        });
        if include_email {
            claims["email"] = json!(email);
            claims["email_verified"] = json!(true);
        }
        crypto::sign_jwt(
            signer.private_pem.as_deref().unwrap_or_default(),
            &signer.key_id,
            &claims,
        )
    }

    /// Verify an ID token this server issued; its claims.
    pub fn verify_id_token(&self, token: &str) -> Result<Value> {
        let bad = || Error::invalid("Invalid ID token.");
        let kid = crypto::jwt_kid(token).ok_or_else(bad)?;
        let key = self
            .read()
            .keys
            .get(&kid)
            .filter(|k| k.account.is_empty())
            .cloned()
            .ok_or_else(bad)?;
        let claims = crypto::verify_jwt(token, &key.public).map_err(|_| bad())?;
        if claims["exp"].as_i64().is_none_or(|e| e <= now()) {
            return Err(bad());
        }
        Ok(claims)
    }

    /// The unique id of a live service account.
    pub fn unique_id_of(&self, email: &str) -> Option<String> {
        self.read()
            .account_by_email(email)
            .map(|a| a.stored.account.unique_id)
    }

    /// The keys that verify ID tokens: `(kid, public key)` (the signing key is made first if
    /// it does not exist yet).
    pub fn id_token_keys(&self) -> Vec<(String, PublicKey)> {
        let _ = self.ensure_signing_key();
        self.read()
            .keys
            .values()
            .filter(|k| k.account.is_empty())
            .map(|k| (k.key_id.clone(), k.public.clone()))
            .collect()
    }

    /// Certificates of an account's keys (user-managed and system-managed), by key id, for
    /// `robot/v1/metadata/x509/EMAIL`.
    pub fn account_certs(&self, email: &str) -> Option<Vec<(String, PublicKey)>> {
        let st = self.read();
        let a = st.account_by_email(email)?;
        let uid = &a.stored.account.unique_id;
        Some(
            st.keys
                .values()
                .filter(|k| &k.account == uid && !k.disabled)
                .map(|k| (k.key_id.clone(), k.public.clone()))
                .collect(),
        )
    }

    /// The target of an IAM Credentials call after walking its `delegates` chain: the caller
    /// needs `permission` on the first account of the chain, and each account on the next.
    fn credential_target(
        &self,
        caller: &Caller,
        name: &str,
        delegates: &[String],
        permission: &str,
    ) -> Result<Account> {
        if !name.starts_with("projects/-/serviceAccounts/") {
            return Err(Error::invalid(format!(
                "Invalid form of account ID {name}. Should be [Gaia ID |Email |Unique ID |] of the account; the project must be '-'."
            )));
        }
        // IAM Credentials words its denial without naming the account, and answers a
        // missing account the same way.
        let denied = || {
            Error::new(
                Code::PermissionDenied,
                format!("Permission '{permission}' denied on resource (or it may not exist)."),
            )
            .with_info(
                "IAM_PERMISSION_DENIED",
                "iam.googleapis.com",
                [("permission", permission)],
            )
        };
        let mut chain = vec![];
        for d in delegates
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(name))
        {
            let a = self
                .account(caller, d, permission)
                .map_err(|e| match e.code {
                    Code::NotFound | Code::PermissionDenied => denied(),
                    _ => e,
                })?;
            chain.push(a);
        }
        let mut who = caller.clone();
        for a in &chain {
            if !self.allowed(&who, permission, &a.target()) {
                return Err(denied());
            }
            who = self.caller(&format!("serviceAccount:{}", a.email()));
        }
        let target = chain.pop().expect("the chain holds the target");
        if target.stored.account.disabled {
            return Err(Error::failed_precondition(format!(
                "Service account {} is disabled.",
                target.email()
            )));
        }
        Ok(target)
    }

    /// `generateAccessToken`.
    pub fn generate_access_token(
        &self,
        caller: &Caller,
        name: &str,
        delegates: &[String],
        scopes: &[String],
        lifetime: Option<i64>,
    ) -> Result<(String, i64)> {
        let a = self.credential_target(
            caller,
            name,
            delegates,
            "iam.serviceAccounts.getAccessToken",
        )?;
        if scopes.is_empty() {
            return Err(Error::invalid("Scope required."));
        }
        let max = if self.lifetime_extension_allowed(&a) {
            EXTENDED_LIFETIME
        } else {
            MAX_LIFETIME
        };
        let lifetime = lifetime.unwrap_or(MAX_LIFETIME);
        if lifetime <= 0 || lifetime > max {
            return Err(Error::invalid(format!(
                "The lifetime requested is not allowed: it must be between 1 and {max} seconds."
            )));
        }
        let t = self.issue_access(
            &format!("serviceAccount:{}", a.email()),
            lifetime,
            None,
            false,
            None,
        )?;
        Ok((t.access_token, now() + lifetime))
    }

    /// Whether the org policy list constraint lets this account have 12-hour tokens.
    fn lifetime_extension_allowed(&self, a: &Account) -> bool {
        let st = self.read();
        let mut cursor = Some(format!("projects/{}", a.project_number));
        while let Some(node) = cursor {
            if let Some(spec) = st
                .org_policies
                .get(&(
                    node.clone(),
                    "iam.allowServiceAccountCredentialLifetimeExtension".to_string(),
                ))
                .and_then(|p| p.spec.as_ref())
            {
                use google_cloud_orgpolicy_v2::model::policy_spec::policy_rule::Kind;
                // Conditional rules count only where their condition holds for the
                // account's project.
                let project = format!("projects/{}", a.project_number);
                let rules =
                    crate::resourcemanager::orgpolicy::applicable_rules(&st, spec, &project);
                return rules.iter().any(|r| match &r.kind {
                    Some(Kind::AllowAll(true)) => true,
                    Some(Kind::Values(v)) => v.allowed_values.iter().any(|x| x == a.email()),
                    _ => false,
                });
            }
            cursor = st.parent_of(&node).map(str::to_string);
        }
        false
    }

    /// `generateIdToken`.
    pub fn generate_id_token(
        &self,
        caller: &Caller,
        name: &str,
        delegates: &[String],
        audience: &str,
        include_email: bool,
    ) -> Result<String> {
        let a = self.credential_target(
            caller,
            name,
            delegates,
            "iam.serviceAccounts.getOpenIdToken",
        )?;
        if audience.is_empty() {
            return Err(Error::invalid("Audience required."));
        }
        self.id_token(a.email(), audience, include_email)
    }

    /// `signBlob`: `(keyId, signature)`.
    pub fn sign_blob(
        &self,
        caller: &Caller,
        name: &str,
        delegates: &[String],
        payload: &[u8],
    ) -> Result<(String, Vec<u8>)> {
        let a = self.credential_target(caller, name, delegates, "iam.serviceAccounts.signBlob")?;
        let k = self.system_key(&a)?;
        Ok((
            k.key_id.clone(),
            crypto::sign_bytes(k.private_pem.as_deref().unwrap_or_default(), payload)?,
        ))
    }

    /// `signJwt`: the payload (a JSON claim set) signed as an RS256 JWT.
    pub fn sign_jwt(
        &self,
        caller: &Caller,
        name: &str,
        delegates: &[String],
        payload: &str,
    ) -> Result<(String, String)> {
        let a = self.credential_target(caller, name, delegates, "iam.serviceAccounts.signJwt")?;
        let claims: Value = serde_json::from_str(payload)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| Error::invalid("The payload is not a valid JSON claim set."))?;
        if claims["exp"]
            .as_i64()
            .is_some_and(|exp| exp > now() + 12 * 3600)
        {
            return Err(Error::invalid(
                "The exp claim must be at most 12 hours in the future.",
            ));
        }
        let k = self.system_key(&a)?;
        Ok((
            k.key_id.clone(),
            crypto::sign_jwt(
                k.private_pem.as_deref().unwrap_or_default(),
                &k.key_id,
                &claims,
            )?,
        ))
    }
}
