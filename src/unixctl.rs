//! The `ovs-appctl` control socket (Open vSwitch's unixctl protocol).
//!
//! Wire format, as `lib/unixctl.c` speaks it: JSON-RPC 1.0 objects back to
//! back on a Unix stream socket. A request is
//! `{"id":N,"method":"fdb/show","params":["br0"]}`; the reply is
//! `{"id":N,"result":"<text>","error":null}` or, on failure,
//! `{"id":N,"result":null,"error":"<text>"}` (ovs-appctl then prints the
//! text on stderr and exits 2). The socket is
//! `<rundir>/ovs-vswitchd.<pid>.ctl` beside the pidfile
//! `<rundir>/ovs-vswitchd.pid`, so an unmodified `ovs-appctl` finds it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use xennet_ovsdb::jsonrpc::JsonStream;

/// A command handler: arguments in, text or error text out.
pub type Handler = Box<dyn Fn(&[String]) -> Result<String, String> + Send + Sync>;

struct Command {
    usage: &'static str,
    min_args: usize,
    max_args: usize,
    handler: Handler,
}

/// The table of commands.
#[derive(Default)]
pub struct Commands {
    cmds: BTreeMap<&'static str, Command>,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.cmds.keys()).finish()
    }
}

impl Commands {
    /// Register `name` taking between `min_args` and `max_args` arguments.
    pub fn add(
        &mut self,
        name: &'static str,
        usage: &'static str,
        min_args: usize,
        max_args: usize,
        handler: Handler,
    ) {
        self.cmds.insert(
            name,
            Command {
                usage,
                min_args,
                max_args,
                handler,
            },
        );
    }

    /// Run one request and build the reply object.
    pub fn dispatch(&self, request: &Value) -> Value {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let method = request.get("method").and_then(Value::as_str).unwrap_or("");
        let params: Vec<String> = match request.get("params").and_then(Value::as_array) {
            Some(a) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
            None => Vec::new(),
        };
        let result = if method == "list-commands" {
            Ok(self.list())
        } else {
            match self.cmds.get(method) {
                None => Err(format!("\"{method}\" is not a valid command")),
                Some(c) if params.len() < c.min_args => Err(format!(
                    "\"{method}\" command requires at least {} arguments",
                    c.min_args
                )),
                Some(c) if params.len() > c.max_args => Err(format!(
                    "\"{method}\" command takes at most {} arguments",
                    c.max_args
                )),
                Some(c) => (c.handler)(&params),
            }
        };
        match result {
            Ok(text) => json!({"id": id, "result": text, "error": null}),
            // As OVS `unixctl_command_reply__`: an error ends in a newline
            // (`ovs-appctl` prints it as it is).
            Err(mut text) => {
                if !text.is_empty() && !text.ends_with('\n') {
                    text.push('\n');
                }
                json!({"id": id, "result": null, "error": text})
            }
        }
    }

    fn list(&self) -> String {
        let mut s = String::from("The available commands are:\n");
        s.push_str("  list-commands\n");
        for (name, c) in &self.cmds {
            s.push_str(&format!("  {:<34}{}\n", name, c.usage));
        }
        s
    }
}

/// Most unixctl connections served at once. OVS's unixctl has no bound;
/// ours keeps idle clients from taking every descriptor: beyond it a
/// connection is accepted and closed at once, with a rate-limited log
/// line and the `unixctl_refused` counter (`coverage/show`).
pub const MAX_CONNECTIONS: usize = 1024;

/// Serve `commands` on `listener` until the task is dropped, at most
/// [`MAX_CONNECTIONS`] connections at once.
///
/// # Errors
/// Only when the listener itself is broken: transient accept errors
/// (out of descriptors, ...) are logged and waited out
/// ([`crate::accept::next`]).
pub async fn serve(listener: UnixListener, commands: Arc<Commands>) -> std::io::Result<()> {
    let what = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
        .unwrap_or_else(|| "unixctl".into());
    let mut errors = crate::accept::AcceptErrors::new(what.clone());
    let mut live = tokio::task::JoinSet::new();
    let mut refused_log = crate::ratelimit::LogLimit::new();
    loop {
        let (stream, _) = crate::accept::next(&mut errors, || listener.accept()).await?;
        while live.try_join_next().is_some() {}
        if live.len() >= MAX_CONNECTIONS {
            drop(stream);
            if let Some(n) = crate::coverage::UNIXCTL_REFUSED.count(&mut refused_log) {
                tracing::warn!(
                    "{what}: {MAX_CONNECTIONS} connections already, refused one ({n} in all)"
                );
            }
            continue;
        }
        let commands = commands.clone();
        live.spawn(async move {
            if let Err(e) = serve_one(stream, &commands).await {
                tracing::debug!("unixctl connection closed: {e}");
            }
        });
    }
}

/// Largest request accepted, in bytes (an `ovs-appctl` request is a
/// method name and a few arguments). Without it a client could make the
/// daemon buffer (and re-parse) up to the OVSDB framing limit of 64 MiB
/// per connection.
const MAX_REQUEST: usize = 1024 * 1024;

async fn serve_one(mut stream: UnixStream, commands: &Commands) -> anyhow::Result<()> {
    let mut decoder = JsonStream::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        decoder.push(&buf[..n])?;
        while let Some(request) = decoder.next_value()? {
            let reply = commands.dispatch(&request);
            stream.write_all(reply.to_string().as_bytes()).await?;
        }
        anyhow::ensure!(
            decoder.pending() <= MAX_REQUEST,
            "unixctl request longer than {MAX_REQUEST} bytes"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Commands {
        let mut c = Commands::default();
        c.add("echo/args", "ARG...", 1, 3, Box::new(|a| Ok(a.join(","))));
        c
    }

    #[test]
    fn dispatch_answers_like_unixctl() {
        let c = table();
        let r = c.dispatch(&json!({"id": 7, "method": "echo/args", "params": ["a", "b"]}));
        assert_eq!(r, json!({"id": 7, "result": "a,b", "error": null}));
        let r = c.dispatch(&json!({"id": 8, "method": "echo/args", "params": []}));
        assert_eq!(r["result"], Value::Null);
        assert!(r["error"].as_str().unwrap().contains("at least 1"));
        let r = c.dispatch(&json!({"id": 9, "method": "nope", "params": []}));
        assert_eq!(r["error"], json!("\"nope\" is not a valid command\n"));
        let r = c.dispatch(&json!({"id": 10, "method": "list-commands", "params": []}));
        assert!(r["result"].as_str().unwrap().contains("echo/args"));
    }

    #[tokio::test]
    async fn an_endless_request_is_cut_off() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let commands = table();
        let serving = tokio::spawn(async move { serve_one(server, &commands).await });
        // An unterminated string: never a whole JSON value.
        let chunk = vec![b'a'; 64 * 1024];
        client.write_all(b"{\"id\":1,\"method\":\"").await.unwrap();
        for _ in 0..(MAX_REQUEST / chunk.len() + 2) {
            if client.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let r = serving.await.unwrap();
        assert!(r.unwrap_err().to_string().contains("longer than"));
    }
}
