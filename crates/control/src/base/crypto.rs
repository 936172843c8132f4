//! Real RSA keys, X.509 certificates and RS256 JWTs: what service account keys, self-signed
//! JWTs, ID tokens and `signBlob` are made of.

use crate::base::error::{Error, Result};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::KeyPair as _;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The public half of a key, as stored: never the private key of a user-managed key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PublicKey {
    /// Self-signed X.509 certificate (what `publicKeyData` and the x509 endpoints serve).
    pub cert_pem: String,
    /// Modulus and exponent, base64url, for JWKS and verification.
    pub n: String,
    pub e: String,
}

/// A freshly generated key pair.
pub struct GeneratedKey {
    /// PKCS#8 PEM, as Google's key files carry it.
    pub private_pem: String,
    pub public: PublicKey,
}

fn crypto_err(what: &str) -> impl Fn(String) -> Error + '_ {
    move |e| Error::internal(format!("{what}: {e}"))
}

/// Generate an RSA 2048 key and a self-signed certificate naming `subject`.
pub fn generate(subject: &str) -> Result<GeneratedKey> {
    let kp = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|e| Error::internal(format!("key generation: {e}")))?;
    let der = kp
        .as_der()
        .map_err(|e| Error::internal(format!("key encoding: {e}")))?;
    // Google's key files carry the key with LF line ends (pem's default is CRLF).
    let private_pem = pem::encode_config(
        &pem::Pem::new("PRIVATE KEY", der.as_ref().to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    );
    let comps = PublicKeyComponents::<Vec<u8>>::from(kp.public_key());
    let cert_pem = self_signed_cert(&private_pem, subject)?;
    Ok(GeneratedKey {
        private_pem,
        public: PublicKey {
            cert_pem,
            n: B64URL.encode(&comps.n),
            e: B64URL.encode(&comps.e),
        },
    })
}

fn self_signed_cert(private_pem: &str, subject: &str) -> Result<String> {
    let err = crypto_err("certificate");
    let key = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(private_pem, &rcgen::PKCS_RSA_SHA256)
        .map_err(|e| err(e.to_string()))?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| err(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, subject);
    Ok(params
        .self_signed(&key)
        .map_err(|e| err(e.to_string()))?
        .pem())
}

/// The public key inside an uploaded X.509 certificate (PEM), for `keys:upload`.
pub fn public_from_cert(cert_pem: &str) -> Result<PublicKey> {
    let bad = |why: &str| {
        Error::invalid(format!(
            "The public key data is not a valid X.509 PEM certificate: {why}."
        ))
    };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(cert_pem.as_bytes()).map_err(|e| bad(&e.to_string()))?;
    let cert = pem.parse_x509().map_err(|e| bad(&e.to_string()))?;
    match cert.public_key().parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let trim = |b: &[u8]| {
                let i = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                b[i..].to_vec()
            };
            Ok(PublicKey {
                cert_pem: cert_pem.trim().to_string() + "\n",
                n: B64URL.encode(trim(rsa.modulus)),
                e: B64URL.encode(trim(rsa.exponent)),
            })
        }
        _ => Err(bad("only RSA keys are supported")),
    }
}

/// Sign claims as an RS256 JWT with header `kid`.
pub fn sign_jwt(private_pem: &str, kid: &str, claims: &Value) -> Result<String> {
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes())
        .map_err(|e| Error::internal(format!("signing key: {e}")))?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_string());
    header.typ = Some("JWT".to_string());
    jsonwebtoken::encode(&header, claims, &key)
        .map_err(|e| Error::internal(format!("signing: {e}")))
}

/// Sign bytes with RSASSA-PKCS1-v1_5 SHA-256 (what `signBlob` returns).
pub fn sign_bytes(private_pem: &str, data: &[u8]) -> Result<Vec<u8>> {
    let der = pem::parse(private_pem).map_err(|e| Error::internal(format!("signing key: {e}")))?;
    let kp = KeyPair::from_pkcs8(der.contents())
        .map_err(|e| Error::internal(format!("signing key: {e}")))?;
    let mut sig = vec![0u8; kp.public_modulus_len()];
    kp.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        data,
        &mut sig,
    )
    .map_err(|e| Error::internal(format!("signing: {e}")))?;
    Ok(sig)
}

/// The `kid` and algorithm of a JWT, read without verifying it.
pub fn jwt_kid(token: &str) -> Option<String> {
    jwt_rs256_kid(token).flatten()
}

/// `Some(kid)` for an RS256 JWT (`kid` itself may be absent: Google's documented JWT-bearer
/// header has none, and Node's google-auth-library sends none), read without verifying it.
pub fn jwt_rs256_kid(token: &str) -> Option<Option<String>> {
    let h = jsonwebtoken::decode_header(token).ok()?;
    (h.alg == jsonwebtoken::Algorithm::RS256).then_some(h.kid)
}

/// The `iss` claim of a JWT, read without verifying it: only to find which account's keys
/// to try on a JWT that names no key.
pub fn jwt_unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = B64URL.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["iss"].as_str().map(str::to_string)
}

/// Verify an RS256 signature and return the claims. Time and audience are the caller's to
/// check: the rules differ between bearer JWTs and OAuth assertions.
pub fn verify_jwt(token: &str, key: &PublicKey) -> std::result::Result<Value, String> {
    let dk = jsonwebtoken::DecodingKey::from_rsa_components(&key.n, &key.e)
        .map_err(|e| e.to_string())?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(token, &dk, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

/// 40 hex characters, like Google's key ids.
pub fn new_key_id() -> String {
    let mut b = [0u8; 20];
    rand::Rng::fill(&mut rand::rng(), &mut b);
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_jwt_verifies_with_its_key_and_not_another() {
        let a = generate("a@example.com").unwrap();
        let b = generate("b@example.com").unwrap();
        let t = sign_jwt(&a.private_pem, "k1", &serde_json::json!({"iss": "a"})).unwrap();
        assert_eq!(jwt_kid(&t).as_deref(), Some("k1"));
        assert_eq!(verify_jwt(&t, &a.public).unwrap()["iss"], "a");
        assert!(
            verify_jwt(&t, &b.public).is_err(),
            "forged signature must fail"
        );
    }

    #[test]
    fn the_certificate_carries_the_same_public_key() {
        let a = generate("a@example.com").unwrap();
        let from_cert = public_from_cert(&a.public.cert_pem).unwrap();
        assert_eq!((from_cert.n, from_cert.e), (a.public.n, a.public.e));
        assert!(
            public_from_cert("-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----")
                .is_err()
        );
    }

    #[test]
    fn sign_bytes_makes_a_2048_bit_signature() {
        let a = generate("a@example.com").unwrap();
        assert_eq!(sign_bytes(&a.private_pem, b"hello").unwrap().len(), 256);
    }
}
