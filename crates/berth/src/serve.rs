//! Serving: opens the data directory and store, binds the listener (plain HTTP or TLS) and runs
//! the API until a shutdown signal.

use crate::config::ServerConfig;
use crate::data_dir::{DataDir, DataDirError};
use berth_api::auth::{KeyPair, Keys};
use berth_api::{ApiConfig, ApiState};
use berth_control::Scope;
use berth_store::{Kind, Store, StoreError};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rand::RngCore;

/// The IAM user `berth up`'s local agent signs as.
pub const LOCAL_NODE_USER: &str = "berth-node";
/// What a node may do: AWS's policy for ECS container instances (poll for tasks, report their
/// state, pull images), and nothing else — no DeleteCluster, no push.
pub const NODE_POLICY: &str =
    "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role";
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blob(#[from] berth_blob::BlobError),
    #[error("{0}")]
    Domain(#[from] berth_types::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS: {0}")]
    Tls(String),
    #[error(
        "refusing plain HTTP on non-loopback address {0}: give --tls-cert/--tls-key, or --insecure-http to accept the risk"
    )]
    InsecureHttp(SocketAddr),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Uploads untouched this long are abandoned (ECR keeps them about a day).
const UPLOAD_EXPIRY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The value of server-wide record `name`: the stored one, or `proposed` stored now. Every
/// server sharing a database ends up with the first one's.
async fn shared_meta(
    store: &Store,
    name: &'static str,
    proposed: String,
) -> Result<String, berth_types::Error> {
    if let Some(rec) = store.read(|r| r.get(Kind::Meta, name))? {
        return Ok(rec.doc);
    }
    let doc = proposed.clone();
    match store
        .write(move |tx| tx.insert(Kind::Meta, name, None, &doc))
        .await
    {
        Ok(_) => Ok(proposed),
        Err(berth_types::Error::Conflict) => Ok(store
            .read(|r| r.get(Kind::Meta, name))?
            .map_or(proposed, |r| r.doc)),
        Err(e) => Err(e),
    }
}

/// A 32-byte secret made once per store (pagination tokens, registry authorization tokens),
/// so a token one server issued is good on every server sharing the database.
async fn meta_key(store: &Store, name: &'static str) -> Result<[u8; 32], berth_types::Error> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    let hex_key = shared_meta(store, name, hex::encode(fresh)).await?;
    let mut key = [0u8; 32];
    hex::decode_to_slice(&hex_key, &mut key)
        .map_err(|e| berth_types::Error::internal(format!("stored {name}: {e}")))?;
    Ok(key)
}

/// The root key pair of every server sharing the store: the first server's, which the store
/// keeps; this data directory's credentials file is made to match (`berth credentials` reads
/// it).
async fn shared_root(
    store: &Store,
    data_dir: &DataDir,
    local: KeyPair,
) -> Result<KeyPair, ServeError> {
    let doc = crate::data_dir::encode_credentials(&local);
    let stored = shared_meta(store, "root-credentials", doc).await?;
    let shared =
        crate::data_dir::decode_credentials(stored.as_bytes(), "the store's root credentials")?;
    if shared != local {
        tracing::warn!(
            "this data directory's root credentials differ from those the shared store holds; using the store's (credentials file rewritten)"
        );
        data_dir.write_credentials(&shared)?;
    }
    Ok(shared)
}

fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ServeError::Tls(format!("certificate {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServeError::Tls(format!("key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Runs the server until `shutdown` resolves.
pub async fn run(
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let _ephemeral_dir;
    let data_path = if config.ephemeral {
        let dir = tempfile::Builder::new()
            .prefix("berth-ephemeral-")
            .tempdir()?;
        let p = dir.path().to_path_buf();
        _ephemeral_dir = Some(dir);
        p
    } else {
        _ephemeral_dir = None;
        config.data_dir.clone()
    };
    if !config.listen.ip().is_loopback() && config.tls.is_none() {
        if !config.insecure_http {
            return Err(ServeError::InsecureHttp(config.listen));
        }
        tracing::warn!(
            listen = %config.listen,
            "serving plain HTTP on a non-loopback address (--insecure-http): use TLS for anything but a trusted network"
        );
    }
    let acceptor = match &config.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let data_dir = DataDir::open(&data_path)?;
    let (local_root, created) = data_dir.root_credentials()?;
    let store = match &config.database {
        Some(url) => Store::open_postgres(url)?,
        None => Store::open(&data_dir.database())?,
    };
    let root = shared_root(&store, &data_dir, local_root).await?;
    let blobs = berth_blob::open(config.blobs.as_deref(), &data_dir.blobs())?;
    let paging_key = meta_key(&store, "paging-key").await?;
    let token_key = meta_key(&store, "registry-token-key").await?;
    // Older data directories are brought to this build's record format (records from before
    // regions belong to this server's region).
    let migrated = berth_control::format::migrate(&store, config.region.as_str()).await?;
    if migrated.from != migrated.to {
        tracing::info!(
            from = migrated.from,
            to = migrated.to,
            records_moved = migrated.moved,
            region = %config.region,
            "data directory migrated to the current record format"
        );
    }
    let scope = Scope {
        account: config.account_id.clone(),
        region: config.region.clone(),
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
    let bound = listener.local_addr()?;
    let leadership = berth_control::leader::Leadership::new(
        store.clone(),
        data_dir.server_id()?,
        config.endpoint_url(bound),
        config.leader_lease,
    );
    // Before serving: a lone server (or one restarted within its lease) leads from its first
    // request on.
    leadership.renew().await;
    let background = berth_control::background::Driver::led_by(leadership.clone());
    let renewing = tokio::spawn(leadership.clone().run());
    let state = ApiState::new(ApiConfig {
        scope,
        keys: Keys::new(root.clone()),
        store: store.clone(),
        blobs,
        paging_key,
        token_key,
        iam_mode: config.iam_mode,
        registry_host: config
            .public_host
            .clone()
            .unwrap_or_else(|| bound.to_string()),
        endpoint: config.endpoint_url(bound),
        reset_enabled: config.ephemeral,
        agent_timeout: config.agent_timeout,
        background: background.clone(),
        clock: if config.time_scale > 1.0 {
            berth_control::clock::Clock::scaled(config.time_scale)
        } else {
            berth_control::clock::Clock::system()
        },
        ecr: config.ecr.clone(),
    });
    if config.blobs.is_none() {
        // Data directories from before blob records keep their blob files by digest alone.
        let adopted = state
            .registry_of_every_region()
            .adopt_unrecorded_blob_files()
            .await?;
        if adopted > 0 {
            tracing::info!(adopted, "blob files of an older data directory recorded");
        }
    }
    register_background_tasks(&background, &state, &config);
    let load_balancer = config
        .load_balancer
        .then(|| crate::lb::spawn_every_region(state.clone(), config.lb_bind));
    let app = berth_api::router(state.clone());
    let endpoint = config.endpoint_url(bound);
    data_dir.record_endpoint(&endpoint)?;
    if created {
        eprintln!(
            "Generated root credentials (shown once; also in {}):\n  aws_access_key_id = {}\n  aws_secret_access_key = {}",
            data_dir.credentials_path().display(),
            root.access_key_id,
            root.secret_access_key
        );
    }
    tracing::info!(
        "Berth is ready at {endpoint} (data dir {}{}; root credentials in {}; `berth credentials --aws-profile berth` writes an AWS CLI profile)",
        data_dir.path().display(),
        if config.ephemeral { ", ephemeral" } else { "" },
        data_dir.credentials_path().display(),
    );

    let local_agent = if !config.local_agent {
        None
    } else if config.tls.is_some() {
        tracing::warn!(
            "the local agent does not run when serving TLS; run `berth agent` against the HTTPS endpoint instead"
        );
        None
    } else {
        let ip = if bound.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            bound.ip()
        };
        // The agent signs as its own IAM user, limited to what a node does.
        let node = state.iam().node_user(LOCAL_NODE_USER, NODE_POLICY).await?;
        let agent_config = berth_agent::AgentConfig {
            endpoint: format!("http://{}", SocketAddr::new(ip, bound.port())),
            cluster: "default".into(),
            access_key_id: node.id,
            secret_access_key: node.secret,
            region: config.region.to_string(),
            attributes: vec![("berth.capacity".into(), "managed".into())],
            availability_zone: None,
            docker_host: None,
            state_dir: data_dir.path().join("agent"),
            memory_reserve_mib: 256,
            poll_interval: std::time::Duration::from_secs(1),
            max_parallel: 10,
        };
        Some(tokio::spawn(berth_agent::run_local(agent_config)))
    };

    match acceptor {
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown)
            .await?;
        }
        Some(acceptor) => {
            let service = TowerToHyperService::new(app);
            tokio::pin!(shutdown);
            loop {
                let (tcp, _) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
                    },
                    () = &mut shutdown => break,
                };
                let acceptor = acceptor.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        }
    }
    background.shutdown();
    renewing.abort();
    leadership.step_down().await;
    if let Some(lb) = load_balancer {
        lb.abort();
    }
    if let Some(a) = local_agent {
        a.abort();
    }
    store.close();
    tracing::info!("Berth stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = ctrl_c.await;
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}

/// Registers task `name`, every `every` of CloudWatch's clock: `pass` on each region, with
/// what they did added up.
fn per_region<F, Fut>(
    driver: &berth_control::background::Driver,
    state: &ApiState,
    name: &'static str,
    every: std::time::Duration,
    pass: F,
) where
    F: Fn(ApiState, std::sync::Arc<berth_api::Regional>, Option<berth_store::Fence>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = Result<berth_control::background::Counts, berth_types::Error>>
        + Send
        + 'static,
{
    let api = state.clone();
    driver.register(name, state.clock().real(every), move |fence| {
        let (api, pass) = (api.clone(), pass.clone());
        async move {
            let mut total: std::collections::BTreeMap<&'static str, u64> = Default::default();
            for region in api.regions() {
                for (what, n) in pass(api.clone(), region, fence.clone()).await? {
                    *total.entry(what).or_default() += n;
                }
            }
            Ok(total.into_iter().collect())
        }
    });
}

/// The control plane's reconcilers, each on its timer and woken by the handlers that change
/// what it acts on (see `berth_control::background`).
fn register_background_tasks(
    driver: &berth_control::background::Driver,
    state: &ApiState,
    config: &ServerConfig,
) {
    use berth_control::background::{
        ALARM_EVALUATOR, INSTANCE_LIVENESS, LIFECYCLE, METRIC_ROLLUP, REGISTRY_GC, REPLICATION,
        SCHEDULED_SCALING, SERVICE_SCHEDULER, STOPPED_TASK_PURGE,
    };
    use std::time::Duration;
    // The collector sees every region's images and links: content is shared by all.
    let (gc_grace, registry) = (config.gc_grace, state.registry_of_every_region());
    driver.register(REGISTRY_GC, config.gc_interval, move |fence| {
        let collector = berth_registry::BlobCollector::new(
            registry.fenced(fence.as_ref()),
            gc_grace,
            UPLOAD_EXPIRY,
        );
        async move {
            let s = collector.activate().await?;
            Ok(vec![
                ("links removed", s.links_removed as u64),
                ("blobs removed", s.blobs_removed as u64),
                ("uploads expired", s.uploads_expired as u64),
                ("orphans removed", s.orphans_removed as u64),
            ])
        }
    });
    // Lifecycle policies are carried out at least every 24 hours of the clock (ECR evaluates
    // them daily), and at once when activated; expired images are audited one by one.
    let api = state.clone();
    driver.register(
        LIFECYCLE,
        state.clock().real(Duration::from_secs(24 * 3600)),
        move |fence| {
            let api = api.clone();
            async move { api.lifecycle_expire(fence.as_ref()).await }
        },
    );
    // Replication: every few seconds and when a push queues copies (retries back off).
    let api = state.clone();
    driver.register(REPLICATION, Duration::from_secs(5), move |fence| {
        let api = api.clone();
        async move { api.replicate(fence.as_ref()).await }
    });
    let (api, lost) = (
        state.clone(),
        (config.agent_timeout, config.agent_lost_timeout),
    );
    let every =
        (config.agent_timeout / 2).clamp(Duration::from_millis(200), Duration::from_secs(5));
    driver.register(INSTANCE_LIVENESS, every, move |fence| {
        let api = api.clone();
        async move {
            let (mut disconnected, mut stopped) = (0, 0);
            for region in api.regions() {
                let ecs = region.ecs.fenced(fence.as_ref());
                let liveness = berth_control::ecs::InstanceLiveness::new(ecs, lost.0, lost.1);
                let s = liveness.activate().await?;
                disconnected += s.disconnected as u64;
                stopped += s.tasks_stopped as u64;
            }
            Ok(vec![
                ("instances disconnected", disconnected),
                ("tasks stopped", stopped),
            ])
        }
    });
    // Stopped tasks are forgotten once past their retention, checked a few times per period.
    let (api, retention) = (state.clone(), config.stopped_task_retention);
    let every = (retention / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
    driver.register(STOPPED_TASK_PURGE, every, move |fence| {
        let api = api.clone();
        async move {
            let mut n = 0;
            for region in api.regions() {
                let ecs = region.ecs.fenced(fence.as_ref());
                n += ecs.task_purge_stopped(retention).await? as u64;
            }
            Ok(vec![("tasks forgotten", n)])
        }
    });
    // Metric batches into chunks, expired chunks out, every minute of CloudWatch's clock.
    per_region(
        driver,
        state,
        METRIC_ROLLUP,
        Duration::from_secs(60),
        |_, region, fence| async move {
            region
                .cloudwatch
                .fenced(fence.as_ref())
                .metrics_rollup()
                .await
        },
    );
    // Alarms are judged when a period completes: every 10 s of CloudWatch's clock (the
    // shortest alarm period); each alarm once per period of its own. The actions they fire
    // (scaling policies) run in the same pass.
    per_region(
        driver,
        state,
        ALARM_EVALUATOR,
        Duration::from_secs(10),
        |api, region, fence| async move {
            let (counts, fired) = region
                .cloudwatch
                .fenced(fence.as_ref())
                .alarms_evaluate()
                .await?;
            api.alarm_actions(&region, fence.as_ref(), fired).await;
            Ok(counts)
        },
    );
    // Scheduled scaling actions run when due: checked every 10 s of CloudWatch's clock.
    per_region(
        driver,
        state,
        SCHEDULED_SCALING,
        Duration::from_secs(10),
        |_, region, fence| async move {
            region
                .autoscaling
                .fenced(fence.as_ref())
                .scheduled_run()
                .await
        },
    );
    // Logs: events past their group's retention expire, deleted groups' and streams' chunks
    // are swept, old Insights queries forgotten; every five minutes of the clock.
    per_region(
        driver,
        state,
        berth_control::background::LOG_RETENTION,
        Duration::from_secs(300),
        |_, region, fence| async move { region.logs.fenced(fence.as_ref()).retention_enforce().await },
    );
    let (api, healthy_after) = (state.clone(), config.task_healthy_after);
    driver.register(SERVICE_SCHEDULER, config.scheduler_interval, move |fence| {
        let api = api.clone();
        async move {
            let mut n = 0;
            for region in api.regions() {
                let scheduler = berth_control::ecs::ServiceScheduler::new(
                    region.ecs.fenced(fence.as_ref()),
                    region.elb.fenced(fence.as_ref()),
                    healthy_after,
                );
                n += scheduler.activate().await? as u64;
            }
            Ok(vec![("services changed", n)])
        }
    });
}
