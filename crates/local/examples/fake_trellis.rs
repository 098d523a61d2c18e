// TEMPORARY manual check harness; deleted after use.
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    Up(trellis_local::UpArgs),
    DemoApp(trellis_local::DemoAppArgs),
    ControlPlane {
        #[arg(long)]
        root_cert_out: PathBuf,
        #[arg(long)]
        listen_address: Ipv4Addr,
        #[arg(long)]
        config_dir: PathBuf,
        #[arg(long)]
        workload_tokens: PathBuf,
        #[arg(long)]
        ca_dir: PathBuf,
        #[arg(long)]
        xds_port: u16,
        #[arg(long)]
        secure_port: u16,
        #[arg(long)]
        monitoring_port: u16,
        #[arg(long)]
        trust_domain: String,
    },
    Proxy {
        #[arg(long)]
        ip: Ipv4Addr,
        #[arg(long)]
        root_cert: PathBuf,
        #[arg(long = "app-port")]
        app_ports: Vec<String>,
        #[arg(long)]
        health_port: u16,
        #[arg(long)]
        outbound_port: u16,
        #[arg(long)]
        discovery_address: String,
        #[arg(long)]
        token_file: PathBuf,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        service_account: String,
        #[arg(long)]
        pod_name: String,
        #[arg(long)]
        workload_name: String,
        #[arg(long = "label")]
        labels: Vec<String>,
        #[arg(long)]
        admin_port: u16,
        #[arg(long)]
        stats_port: u16,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Up(args) => trellis_local::run_up(args).await,
        Cmd::DemoApp(args) => trellis_local::run_demo_app(args).await,
        Cmd::ControlPlane {
            root_cert_out,
            listen_address,
            secure_port,
            config_dir,
            ..
        } => {
            let _l = TcpListener::bind((listen_address, secure_port)).await?;
            eprintln!(
                "error: {}/x.yaml:1:1: spec: fake error",
                config_dir.display()
            );
            eprintln!("control plane listening");
            std::fs::write(
                root_cert_out,
                "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n",
            )?;
            std::future::pending::<()>().await;
            Ok(())
        }
        Cmd::Proxy {
            ip,
            root_cert,
            app_ports,
            health_port,
            outbound_port,
            ..
        } => {
            let state_dir = root_cert.parent().unwrap().to_path_buf();
            for mapping in app_ports {
                let (c, a) = mapping.split_once('=').unwrap();
                let listener = TcpListener::bind((ip, c.parse::<u16>()?)).await?;
                let app: SocketAddr = (ip, a.parse::<u16>()?).into();
                tokio::spawn(async move {
                    loop {
                        let (mut s, _) = listener.accept().await.unwrap();
                        tokio::spawn(async move {
                            let mut u = TcpStream::connect(app).await.unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut s, &mut u).await;
                        });
                    }
                });
            }
            let health = TcpListener::bind((ip, health_port)).await?;
            tokio::spawn(serve(health, move |_req| async {
                Response::new(Full::new(Bytes::from_static(b"ok")))
            }));
            let outbound = TcpListener::bind((ip, outbound_port)).await?;
            let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
            serve(outbound, move |req: Request<Incoming>| {
                let client = client.clone();
                let state_dir = state_dir.clone();
                async move {
                    let host = req.uri().host().unwrap_or("").to_owned();
                    let state = trellis_local::UpState::read(&state_dir).unwrap();
                    let svc = state.services.iter().find(|s| s.name == host).unwrap();
                    let base = svc
                        .url
                        .trim_end_matches("/productpage")
                        .trim_end_matches('/')
                        .to_owned();
                    let mut up = Request::get(format!("{base}{}", req.uri().path()))
                        .body(Empty::new())
                        .unwrap();
                    *up.headers_mut() = req.headers().clone();
                    let resp = client.request(up).await.unwrap();
                    let status = resp.status();
                    let body = resp.into_body().collect().await.unwrap().to_bytes();
                    let mut r = Response::new(Full::new(body));
                    *r.status_mut() = status;
                    r
                }
            })
            .await;
            Ok(())
        }
    }
}

async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response<Full<Bytes>>> + Send,
{
    loop {
        let (s, _) = listener.accept().await.unwrap();
        let h = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |r| {
                let h = h.clone();
                async move { Ok::<_, Infallible>(h(r).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}
