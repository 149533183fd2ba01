//! c10d's gloo backend across real processes on loopback: this test binary starts copies of
//! itself as the ranks (through torchrun, and by hand as a Slurm-like launcher would), and each
//! rank checks every collective's values against what the ranks put in, so a mismatch between
//! the gloo headers the shim compiles with and the gloo inside libtorch shows as wrong numbers,
//! not only as a crash.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use dist::{Backend, Launch, ProcessGroup};
use tch::{Device, Kind, Tensor};

/// Which part a started copy plays (unset: the copy is the test runner itself).
const ROLE: &str = "DIST_TEST_ROLE";
/// The group's timeout in the started copies, in milliseconds.
const TIMEOUT_MS: &str = "DIST_TEST_TIMEOUT_MS";

fn vec_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// Every collective, its values checked against what each rank put in.
fn check_collectives(group: &ProcessGroup) {
    let (r, w) = (group.rank() as f64, group.world_size() as f64);
    let sum = w * (w + 1.0) / 2.0; // of 1..=w
    for kind in [Kind::Float, Kind::Double, Kind::Int64] {
        let mut t = Tensor::from_slice(&[r + 1.0, 10.0 * (r + 1.0), -(r + 1.0)]).to_kind(kind);
        group.all_reduce_sum(&mut t).unwrap();
        assert_eq!(vec_f64(&t), [sum, 10.0 * sum, -sum], "{kind:?}");
    }
    // Larger than one gloo chunk.
    let mut big = Tensor::full([1 << 20], r + 1.0, (Kind::Float, Device::Cpu));
    group.all_reduce_sum(&mut big).unwrap();
    assert_eq!(big.min().double_value(&[]), sum);
    assert_eq!(big.max().double_value(&[]), sum);

    let last = group.world_size() - 1;
    let mut b = Tensor::from_slice(&[r, r * r, 7.0]).to_kind(Kind::Float);
    group.broadcast(&mut b, last).unwrap();
    let l = last as f64;
    assert_eq!(vec_f64(&b), [l, l * l, 7.0]);

    // Two rows per rank, in rank order.
    let mine = Tensor::from_slice(&[r, r + 0.5, 2.0 * r, -r, 100.0 + r, 0.25]).reshape([2, 3]);
    let all = group.all_gather(&mine.to_kind(Kind::Float)).unwrap();
    assert_eq!(all.size(), [2 * group.world_size() as i64, 3]);
    for q in 0..group.world_size() {
        let q64 = q as f64;
        let rows = all.narrow(0, 2 * q as i64, 2);
        assert_eq!(
            vec_f64(&rows),
            [q64, q64 + 0.5, 2.0 * q64, -q64, 100.0 + q64, 0.25],
            "rank {q}'s rows"
        );
    }
    let scalars = group.all_gather(&Tensor::from(r as i64)).unwrap();
    assert_eq!(
        vec_f64(&scalars),
        (0..group.world_size())
            .map(|q| q as f64)
            .collect::<Vec<_>>()
    );
    group.barrier().unwrap();

    let err = group
        .broadcast(
            &mut Tensor::zeros([1], (Kind::Float, Device::Cpu)),
            group.world_size(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with(&format!(
            "broadcast: root {} is not a rank",
            group.world_size()
        )),
        "{err}"
    );
}

fn join() -> dist::Result<ProcessGroup> {
    let launch = Launch::from_env()
        .unwrap()
        .expect("started with the launch variables");
    let ms = std::env::var(TIMEOUT_MS).map_or(30_000, |v| v.parse().unwrap());
    ProcessGroup::join(&launch, Backend::Gloo, Duration::from_millis(ms))
}

/// The body of a started copy; the runner's tests start it with `--ignored --exact rank`.
#[test]
#[ignore = "one rank of a launch: started by the other tests of this file"]
fn rank() {
    match std::env::var(ROLE).as_deref() {
        Ok("collectives") => {
            let group = join().unwrap();
            check_collectives(&group);
            println!(
                "rank {} of {}: collectives ok",
                group.rank(),
                group.world_size()
            );
        }
        Ok("alone") => match join() {
            Ok(_) => panic!("joined a group whose other ranks never came"),
            Err(e) => println!("error: {e}"),
        },
        Ok("survivor") => {
            let group = join().unwrap();
            group.barrier().unwrap();
            if group.rank() == 1 {
                // Dies without a word, as a killed process does.
                std::process::exit(3);
            }
            let mut t = Tensor::ones([4], (Kind::Float, Device::Cpu));
            let start = Instant::now();
            let mut result = Ok(());
            // The peer's death may take a collective or two to be noticed.
            for _ in 0..3 {
                result = group.all_reduce_sum(&mut t);
                if result.is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let err = result.expect_err("a collective with a dead peer must fail");
            println!("error after {:.1} s: {err}", start.elapsed().as_secs_f64());
        }
        Ok("nccl") => {
            let launch = Launch::from_env().unwrap().unwrap();
            match ProcessGroup::join(&launch, Backend::Nccl, Duration::from_secs(30)) {
                Ok(group) => {
                    let device = Device::Cuda(launch.local_rank);
                    let mut t = Tensor::full([3], 2.0, (Kind::Float, device));
                    group.all_reduce_sum(&mut t).unwrap();
                    let w = group.world_size() as f64;
                    assert_eq!(vec_f64(&t.to_device(Device::Cpu)), [2.0 * w; 3]);
                    println!("nccl: all-reduce ok on {device:?}");
                }
                Err(e) => println!("nccl: error: {e}"),
            }
        }
        other => panic!("{ROLE} = {other:?}"),
    }
}

/// The launch of the ranks: `torchrun` from the project venv, or none there.
fn torchrun() -> Option<PathBuf> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/torchrun");
    std::env::var_os("TORCHRUN")
        .map(PathBuf::from)
        .or_else(|| venv.is_file().then_some(venv))
}

/// The arguments that make a copy of this binary run [`rank`].
fn rank_args() -> [&'static str; 5] {
    [
        "--ignored",
        "--exact",
        "rank",
        "--nocapture",
        "--test-threads=1",
    ]
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `world` copies started by hand with the launch variables (rank 0 serves the store), their
/// outputs in rank order.
fn by_hand(world: usize, role: &str, timeout_ms: u64, ranks: &[usize]) -> Vec<Output> {
    let port = free_port().to_string();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = ranks
        .iter()
        .map(|r| {
            Command::new(&exe)
                .args(rank_args())
                .env(ROLE, role)
                .env(TIMEOUT_MS, timeout_ms.to_string())
                .env("RANK", r.to_string())
                .env("LOCAL_RANK", r.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", &port)
                .env_remove("TORCHELASTIC_USE_AGENT_STORE")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn three_ranks_under_torchrun_agree_on_every_collective() {
    assert!(
        Backend::Gloo.available(),
        "built without gloo: install libgloo-dev"
    );
    let Some(torchrun) = torchrun() else {
        panic!("torchrun not found: run scripts/setup.sh (it makes .venv) or set TORCHRUN");
    };
    let out = Command::new(torchrun)
        .args(["--standalone", "--nproc-per-node", "3", "--no-python"])
        .arg(std::env::current_exe().unwrap())
        .args(rank_args())
        .env(ROLE, "collectives")
        .env("OMP_NUM_THREADS", "1")
        .output()
        .unwrap();
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    for r in 0..3 {
        assert!(
            text.contains(&format!("rank {r} of 3: collectives ok")),
            "{text}"
        );
    }
}

#[test]
fn two_ranks_launched_by_hand_agree_on_every_collective() {
    let outs = by_hand(2, "collectives", 30_000, &[0, 1]);
    for (r, out) in outs.iter().enumerate() {
        assert!(out.status.success(), "rank {r}: {}", text(out));
        assert!(
            text(out).contains(&format!("rank {r} of 2: collectives ok")),
            "{}",
            text(out)
        );
    }
}

#[test]
fn a_rank_whose_peers_never_come_fails_within_the_timeout() {
    let start = Instant::now();
    let outs = by_hand(2, "alone", 2_000, &[0]);
    let (out, took) = (&outs[0], start.elapsed());
    let text = text(out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("error: rank 0 of 2: joining the gloo group at 127.0.0.1:"),
        "{text}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}: {text}");
}

#[test]
fn a_dead_peer_fails_the_survivors_collective_instead_of_hanging() {
    let start = Instant::now();
    let outs = by_hand(2, "survivor", 10_000, &[0, 1]);
    let took = start.elapsed();
    assert_eq!(outs[1].status.code(), Some(3), "{}", text(&outs[1]));
    let text = text(&outs[0]);
    assert!(outs[0].status.success(), "{text}");
    assert!(text.contains("rank 0 of 2: all-reduce (sum): "), "{text}");
    assert!(took < Duration::from_secs(60), "took {took:?}: {text}");
}

/// Where libtorch has CUDA, the NCCL backend is built; one rank of it sums a CUDA tensor where
/// a GPU is present, and fails with an error (not a crash) where none is.
#[test]
fn nccl_is_built_where_libtorch_has_cuda() {
    let lib = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.libtorch/lib");
    if !lib.join("libtorch_cuda.so").is_file() {
        eprintln!("skipped: {} has no libtorch_cuda.so", lib.display());
        return;
    }
    assert!(
        Backend::Nccl.available(),
        "libtorch has CUDA, but NCCL was not built"
    );
    let out = &by_hand(1, "nccl", 30_000, &[0])[0];
    let text = text(out);
    assert!(out.status.success(), "{text}");
    if tch::Cuda::is_available() {
        assert!(text.contains("nccl: all-reduce ok"), "{text}");
    } else {
        assert!(
            text.contains("nccl: error: rank 0 of 1: joining the nccl group"),
            "{text}"
        );
    }
}
