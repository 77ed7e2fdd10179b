//! Real MQTT peers for agent tests: a mosquitto broker on its own port, a recording subscriber,
//! and the agent itself as a child process.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serde_json::Value;

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` every 50 ms until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// A mosquitto broker on loopback with persistence, so queued QoS 1 messages of persistent
/// sessions survive its restarts.
pub struct Mosquitto {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Mosquitto {
        Mosquitto::start_on(dir, free_port())
    }

    pub fn start_on(dir: &Path, port: u16) -> Mosquitto {
        let mut m = Mosquitto {
            port,
            dir: dir.to_owned(),
            child: None,
        };
        m.restart();
        m
    }

    pub fn restart(&mut self) {
        // mosquitto started as root drops to its own user, which must be able to save its queues.
        let store = self.dir.join("mosquitto-db");
        std::fs::create_dir_all(&store).unwrap();
        std::fs::set_permissions(&store, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 100000\n",
                self.port,
                store.display()
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.join("mosquitto.log")).unwrap())
            .spawn()
            .expect("mosquitto is installed (apt-get install mosquitto; .ci/run does it)");
        self.child = Some(child);
        let port = self.port;
        assert!(
            wait_for(Duration::from_secs(10), || TcpStream::connect((
                "127.0.0.1",
                port
            ))
            .is_ok()),
            "mosquitto did not start"
        );
    }

    /// Stops the broker as a service restart does (SIGTERM), so it saves the queues of
    /// persistent sessions; a broker killed with SIGKILL loses messages it had acknowledged,
    /// which no client can prevent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One received message.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {:?}",
                self.topic,
                String::from_utf8_lossy(&self.payload)
            )
        })
    }
}

/// A subscriber recording every message on `#`, with a persistent session so it misses nothing
/// across broker restarts.
pub struct Subscriber {
    pub messages: Arc<Mutex<Vec<Received>>>,
    client: Client,
}

impl Subscriber {
    pub fn connect(port: u16, filter: &str) -> Subscriber {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut options = MqttOptions::new(format!("test-sub-{port}-{n}"), "127.0.0.1", port);
        options
            .set_clean_session(false)
            .set_keep_alive(Duration::from_secs(5))
            .set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut connection) = Client::new(options, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let subscribed = Arc::new(Mutex::new(false));
        {
            let messages = messages.clone();
            let subscribed = subscribed.clone();
            let client = client.clone();
            let filter = filter.to_owned();
            std::thread::spawn(move || {
                for event in connection.iter() {
                    match event {
                        Ok(Event::Incoming(Packet::ConnAck(_))) => {
                            let _ = client.subscribe(filter.clone(), QoS::AtLeastOnce);
                        }
                        Ok(Event::Incoming(Packet::SubAck(_))) => {
                            *subscribed.lock().unwrap() = true
                        }
                        Ok(Event::Incoming(Packet::Publish(p))) => {
                            messages.lock().unwrap().push(Received {
                                topic: p.topic.clone(),
                                payload: p.payload.to_vec(),
                                retain: p.retain,
                            })
                        }
                        Ok(_) => {}
                        Err(rumqttc::ConnectionError::RequestsDone) => break,
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            });
        }
        assert!(
            wait_for(Duration::from_secs(20), || *subscribed.lock().unwrap()),
            "subscriber could not subscribe on port {port}"
        );
        Subscriber { messages, client }
    }

    pub fn on(&self, topic: &str) -> Vec<Received> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic == topic)
            .cloned()
            .collect()
    }

    pub fn matching(&self, pred: impl Fn(&str) -> bool) -> Vec<Received> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|m| pred(&m.topic))
            .cloned()
            .collect()
    }

    /// Unique event ids received on `topic`.
    pub fn event_ids(&self, topic: &str) -> BTreeSet<String> {
        self.on(topic)
            .iter()
            .map(|m| m.json()["id"].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .unwrap();
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

/// The agent as a child process.
pub struct Agent {
    pub child: Child,
    stderr_path: PathBuf,
    stdout_path: PathBuf,
}

impl Agent {
    pub fn start(config: &Path) -> Agent {
        Agent::start_with_env(config, &[])
    }

    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Agent {
        Agent::start_logging_in(config, config.parent().unwrap(), env)
    }

    /// Starts the agent on `config` with its stdout and stderr in files under `dir` (for configs
    /// that live in the repository).
    pub fn start_logging_in(config: &Path, dir: &Path, env: &[(&str, &str)]) -> Agent {
        let run = free_port();
        let stderr_path = dir.join(format!("agent-{run}.stderr"));
        let stdout_path = dir.join(format!("agent-{run}.stdout"));
        let child = Command::new(env!("CARGO_BIN_EXE_edgemass"))
            .args(["run", "--config"])
            .arg(config)
            .env("EDGEMASS_LOG", "info,rumqttd=off")
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&stdout_path).unwrap())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .unwrap();
        Agent {
            child,
            stderr_path,
            stdout_path,
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// What the agent printed so far (events, with `mqtt.print_events`).
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
    }

    /// Kills the agent with SIGKILL (nothing flushed, no goodbye) and reaps it.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for exit; returns the exit code.
    pub fn wait(&mut self, timeout: Duration) -> i32 {
        let until = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code().unwrap_or(-1);
            }
            if Instant::now() > until {
                let _ = self.child.kill();
                panic!(
                    "agent did not exit in {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Events produced, from the agent's closing log line.
    pub fn produced(&self) -> u64 {
        let stderr = self.stderr();
        let line = stderr
            .lines()
            .find(|l| l.contains("stopped:"))
            .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"));
        let after = line.split("stopped: ").nth(1).unwrap();
        after.split_whitespace().next().unwrap().parse().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on loopback; returns status code and body.
pub fn http_get(port: u16, path: &str) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}
