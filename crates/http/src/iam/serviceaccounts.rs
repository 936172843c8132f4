//! IAM v1 service accounts (`iam.googleapis.com`).

use crate::wire::operation::{Interface, Op, iam_ops, serves};
use crate::wire::{
    ApiError, ApiResult, Auth, Body, EnumName, Enums, Params, named, page, parse, reply,
    split_verb, unknown_verb,
};
use crate::{AppState, iam_policy_verbs};
use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use google_cloud_iam_admin_v1::model as admin;
use google_cloud_iam_credentials_v1::model as creds;
use serde_json::{Value, json};

static IAM: Interface = Interface {
    service: "iam.googleapis.com",
    name: "google.iam.admin.v1.IAM",
};
static CREDENTIALS: Interface = Interface {
    service: "iamcredentials.googleapis.com",
    name: "google.iam.credentials.v1.IAMCredentials",
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/projects/{project}/serviceAccounts",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &IAM, "ListServiceAccounts"),
                        Op::write("POST", "", &IAM, "CreateServiceAccount"),
                    ]]
                },
                get(list).post(create),
            ),
        )
        .route(
            "/v1/projects/{project}/serviceAccounts/{seg}",
            serves(
                const {
                    &[
                        &[
                            Op::read("GET", "", &IAM, "GetServiceAccount"),
                            Op::write("PATCH", "", &IAM, "PatchServiceAccount"),
                            Op::write("PUT", "", &IAM, "UpdateServiceAccount"),
                            Op::write("DELETE", "", &IAM, "DeleteServiceAccount"),
                            Op::write("POST", "enable", &IAM, "EnableServiceAccount"),
                            Op::write("POST", "disable", &IAM, "DisableServiceAccount"),
                            Op::write("POST", "undelete", &IAM, "UndeleteServiceAccount"),
                            Op::read(
                                "POST",
                                "generateAccessToken",
                                &CREDENTIALS,
                                "GenerateAccessToken",
                            ),
                            Op::read("POST", "generateIdToken", &CREDENTIALS, "GenerateIdToken"),
                            Op::read("POST", "signBlob", &CREDENTIALS, "SignBlob"),
                            Op::read("POST", "signJwt", &CREDENTIALS, "SignJwt"),
                        ],
                        &iam_ops(&IAM, "POST"),
                    ]
                },
                get(get_one)
                    .patch(patch)
                    .put(put)
                    .delete(delete)
                    .post(post_verb),
            ),
        )
        .route(
            "/v1/projects/{project}/serviceAccounts/{sa}/keys",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &IAM, "ListServiceAccountKeys"),
                        Op::write("POST", "", &IAM, "CreateServiceAccountKey"),
                    ]]
                },
                get(list_keys).post(create_key),
            ),
        )
        .route(
            "/v1/projects/{project}/serviceAccounts/{sa}/keys:upload",
            serves(
                const { &[&[Op::write("POST", "upload", &IAM, "UploadServiceAccountKey")]] },
                post(upload_key),
            ),
        )
        .route(
            "/v1/projects/{project}/serviceAccounts/{sa}/keys/{seg}",
            serves(
                const {
                    &[&[
                        Op::read("GET", "", &IAM, "GetServiceAccountKey"),
                        Op::write("DELETE", "", &IAM, "DeleteServiceAccountKey"),
                        Op::write("POST", "disable", &IAM, "DisableServiceAccountKey"),
                        Op::write("POST", "enable", &IAM, "EnableServiceAccountKey"),
                    ]]
                },
                get(get_key).delete(delete_key).post(key_verb),
            ),
        )
}

fn name(project: &str, sa: &str) -> String {
    format!("projects/{project}/serviceAccounts/{sa}")
}

async fn list(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(project): Path<String>,
) -> ApiResult {
    let all = s
        .control
        .list_service_accounts(&c, &format!("projects/{project}"))?;
    let (items, next) = page(&p, &all, 20, 100)?;
    let mut resp = admin::ListServiceAccountsResponse::new();
    resp.accounts = items;
    resp.next_page_token = next;
    Ok(reply(&p, &resp, &[]))
}

async fn create(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path(project): Path<String>,
    Body(req): Body<admin::CreateServiceAccountRequest>,
) -> ApiResult {
    let sa = s.control.create_service_account(
        &c,
        &format!("projects/{project}"),
        &req.account_id,
        req.service_account,
    )?;
    Ok(reply(&p, &sa, &[]))
}

async fn get_one(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_service_account(&c, &name(&project, &sa))?,
        &[],
    ))
}

async fn patch(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
    Body(req): Body<admin::PatchServiceAccountRequest>,
) -> ApiResult {
    let patch = req.service_account.unwrap_or_default();
    let mask = req.update_mask.map(|m| m.paths).unwrap_or_default();
    Ok(reply(
        &p,
        &s.control
            .patch_service_account(&c, &name(&project, &sa), patch, &mask)?,
        &[],
    ))
}

/// The deprecated `PUT` (update): only the display name changes.
async fn put(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
    Body(body): Body<admin::ServiceAccount>,
) -> ApiResult {
    let mask = vec!["display_name".to_string()];
    Ok(reply(
        &p,
        &s.control
            .patch_service_account(&c, &name(&project, &sa), body, &mask)?,
        &[],
    ))
}

async fn delete(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
) -> ApiResult {
    s.control.delete_service_account(&c, &name(&project, &sa))?;
    Ok(reply(&p, &json!({}), &[]))
}

async fn post_verb(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, seg)): Path<(String, String)>,
    Body(body): Body<Value>,
) -> ApiResult {
    let (sa, verb) = split_verb(&seg);
    let n = name(&project, sa);
    match verb {
        "enable" | "disable" => {
            s.control
                .set_service_account_disabled(&c, &n, verb == "disable")?;
            Ok(reply(&p, &json!({}), &[]))
        }
        "undelete" => {
            let _: admin::UndeleteServiceAccountRequest = parse(body)?;
            let mut resp = admin::UndeleteServiceAccountResponse::new();
            resp.restored_account = Some(s.control.undelete_service_account(&c, &n)?);
            Ok(reply(&p, &resp, &[]))
        }
        "getIamPolicy" | "setIamPolicy" | "testIamPermissions" => {
            let control = &s.control;
            iam_policy_verbs(
                &p,
                verb,
                body,
                |v| control.sa_get_iam_policy(&c, &n, v),
                |pol, mask| control.sa_set_iam_policy(&c, &n, pol, mask),
                |perms| control.sa_test_iam_permissions(&c, &n, perms),
            )
        }
        // IAM Credentials (iamcredentials.googleapis.com) shares this path shape.
        "generateAccessToken" => {
            let req: creds::GenerateAccessTokenRequest = parse(body)?;
            let lifetime = req.lifetime.map(|d| d.seconds());
            let (token, expires) =
                s.control
                    .generate_access_token(&c, &n, &req.delegates, &req.scope, lifetime)?;
            let mut resp = creds::GenerateAccessTokenResponse::new();
            resp.access_token = token;
            resp.expire_time = google_cloud_wkt::Timestamp::new(expires, 0).ok();
            Ok(reply(&p, &resp, &[]))
        }
        "generateIdToken" => {
            let req: creds::GenerateIdTokenRequest = parse(body)?;
            let mut resp = creds::GenerateIdTokenResponse::new();
            resp.token = s.control.generate_id_token(
                &c,
                &n,
                &req.delegates,
                &req.audience,
                req.include_email,
            )?;
            Ok(reply(&p, &resp, &[]))
        }
        "signBlob" => {
            let req: creds::SignBlobRequest = parse(body)?;
            let (key_id, sig) = s.control.sign_blob(&c, &n, &req.delegates, &req.payload)?;
            let mut resp = creds::SignBlobResponse::new();
            resp.key_id = key_id;
            resp.signed_blob = bytes::Bytes::from(sig);
            Ok(reply(&p, &resp, &[]))
        }
        "signJwt" => {
            let req: creds::SignJwtRequest = parse(body)?;
            let (key_id, jwt) = s.control.sign_jwt(&c, &n, &req.delegates, &req.payload)?;
            let mut resp = creds::SignJwtResponse::new();
            resp.key_id = key_id;
            resp.signed_jwt = jwt;
            Ok(reply(&p, &resp, &[]))
        }
        "" => Err(ApiError(runpool_control::Error::not_found(
            "Method not found.",
        ))),
        _ => Err(unknown_verb(verb)),
    }
}

const KEY_ALGORITHM: EnumName = named::<admin::ServiceAccountKeyAlgorithm>;
const KEY_ORIGIN: EnumName = named::<admin::ServiceAccountKeyOrigin>;
const KEY_TYPE: EnumName = named::<admin::list_service_account_keys_request::KeyType>;
const KEY_ENUMS: Enums = &[
    ("keyAlgorithm", KEY_ALGORITHM),
    (
        "privateKeyType",
        named::<admin::ServiceAccountPrivateKeyType>,
    ),
    ("keyOrigin", KEY_ORIGIN),
    ("keyType", KEY_TYPE),
];
const KEYS_ENUMS: Enums = &[
    ("keys.keyAlgorithm", KEY_ALGORITHM),
    ("keys.keyOrigin", KEY_ORIGIN),
    ("keys.keyType", KEY_TYPE),
];

async fn list_keys(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
) -> ApiResult {
    use admin::list_service_account_keys_request::KeyType;
    let types: Vec<KeyType> = p
        .all("keyTypes")
        .iter()
        .map(|t| match t.as_str() {
            "USER_MANAGED" | "1" => Ok(KeyType::UserManaged),
            "SYSTEM_MANAGED" | "2" => Ok(KeyType::SystemManaged),
            other => Err(ApiError(runpool_control::Error::invalid(format!(
                "Invalid value at 'key_types' (type.googleapis.com/google.iam.admin.v1.ListServiceAccountKeysRequest.KeyType), \"{other}\""
            )))),
        })
        .collect::<Result<_, _>>()?;
    let mut resp = admin::ListServiceAccountKeysResponse::new();
    resp.keys = s.control.list_keys(&c, &name(&project, &sa), &types)?;
    Ok(reply(&p, &resp, KEYS_ENUMS))
}

async fn create_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
    Body(req): Body<admin::CreateServiceAccountKeyRequest>,
) -> ApiResult {
    let key = s
        .control
        .create_key(&c, &name(&project, &sa), req.private_key_type)?;
    Ok(reply(&p, &key, KEY_ENUMS))
}

async fn upload_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa)): Path<(String, String)>,
    Body(req): Body<admin::UploadServiceAccountKeyRequest>,
) -> ApiResult {
    let key = s
        .control
        .upload_key(&c, &name(&project, &sa), &req.public_key_data)?;
    Ok(reply(&p, &key, KEY_ENUMS))
}

fn key_name(project: &str, sa: &str, key: &str) -> String {
    format!("{}/keys/{key}", name(project, sa))
}

async fn get_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa, key)): Path<(String, String, String)>,
) -> ApiResult {
    Ok(reply(
        &p,
        &s.control.get_key(&c, &key_name(&project, &sa, &key))?,
        KEY_ENUMS,
    ))
}

async fn delete_key(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa, key)): Path<(String, String, String)>,
) -> ApiResult {
    s.control.delete_key(&c, &key_name(&project, &sa, &key))?;
    Ok(reply(&p, &json!({}), &[]))
}

async fn key_verb(
    State(s): State<AppState>,
    Auth(c): Auth,
    p: Params,
    Path((project, sa, seg)): Path<(String, String, String)>,
    Body(_): Body<Value>,
) -> ApiResult {
    let (key, verb) = split_verb(&seg);
    match verb {
        "disable" | "enable" => {
            s.control
                .set_key_disabled(&c, &key_name(&project, &sa, key), verb == "disable")?;
            Ok(reply(&p, &json!({}), &[]))
        }
        _ => Err(unknown_verb(verb)),
    }
}
