//! Google's own Rust SDK against the real binary: `google-cloud-auth` trades an authorized
//! user's refresh token at this server's token endpoint (as Application Default Credentials
//! do), and the generated clients (`google-cloud-resourcemanager-v3`, `google-cloud-run-v2`)
//! call the APIs with the endpoint pointed here, IAM deciding as for any other caller; the
//! recommender and troubleshooter clients read what policy intelligence computes.

mod common;

use common::Server;
use google_cloud_auth::credentials::user_account;
use google_cloud_resourcemanager_v3::client::Projects;
use google_cloud_run_v2::client::WorkerPools;
use serde_json::json;

#[test]
fn googles_rust_clients_authenticate_and_are_authorized_here() {
    let server = Server::start();
    let api = server.api();
    // An authorized-user file, as `gcloud auth application-default login` writes, naming this
    // server's token endpoint.
    let user_file = |who: &str| {
        json!({
            "type": "authorized_user",
            "client_id": "runpool-test",
            "client_secret": "unused",
            "refresh_token": api.tokens(who)["refresh_token"],
            "token_uri": format!("{}/token", server.endpoint),
        })
    };
    let (admin, bob) = (user_file("admin@example.com"), user_file("bob@example.com"));
    let endpoint = server.endpoint.clone();
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            let admin = user_account::Builder::new(admin).build().unwrap();
            let bob = user_account::Builder::new(bob).build().unwrap();
            let projects = |c| {
                Projects::builder()
                    .with_endpoint(endpoint.clone())
                    .with_credentials(c)
                    .build()
            };
            let as_admin = projects(admin.clone()).await.unwrap();
            let p = as_admin
                .get_project()
                .set_name("projects/demo-project")
                .send()
                .await
                .unwrap();
            assert_eq!(p.project_id, "demo-project");
            assert!(p.name.starts_with("projects/"), "{}", p.name);

            // bob holds nothing: Google's status and message reach the Rust client.
            let as_bob = projects(bob).await.unwrap();
            let e = as_bob
                .get_project()
                .set_name("projects/demo-project")
                .send()
                .await
                .unwrap_err();
            let status = e.status().expect("a service error");
            assert_eq!(
                status.code,
                google_cloud_gax::error::rpc::Code::PermissionDenied
            );
            assert!(
                status.message.contains("resourcemanager.projects.get"),
                "{status:?}"
            );

            // Cloud Run v2: create a worker pool and wait on its long-running operation.
            let pools = WorkerPools::builder()
                .with_endpoint(endpoint.clone())
                .with_credentials(admin)
                .build()
                .await
                .unwrap();
            use google_cloud_lro::Poller;
            let mut container = google_cloud_run_v2::model::Container::new();
            container.image = "us-docker.pkg.dev/cloudrun/container/worker-pool".into();
            container.command = vec!["sh".into(), "-c".into(), "sleep 3600".into()];
            let mut template = google_cloud_run_v2::model::WorkerPoolRevisionTemplate::new();
            template.containers = vec![container];
            let mut pool = google_cloud_run_v2::model::WorkerPool::new();
            pool.template = Some(template);
            let created = pools
                .create_worker_pool()
                .set_parent("projects/demo-project/locations/us-central1")
                .set_worker_pool_id("rust-sdk")
                .set_worker_pool(pool)
                .poller()
                .until_done()
                .await
                .unwrap();
            assert!(
                created.name.ends_with("/workerPools/rust-sdk"),
                "{}",
                created.name
            );
            assert!(
                created
                    .template
                    .unwrap()
                    .service_account
                    .ends_with("-compute@developer.gserviceaccount.com"),
                "no account named: the default compute account"
            );
        });
}
