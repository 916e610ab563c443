//! A real `redis-server` standing behind a simulated database: the simulator
//! keeps the server's `default` user password equal to the database password.

use redis::{AsyncCommands as _, IntoConnectionInfo as _, aio::MultiplexedConnection};
use uuid::Uuid;

use super::{
    command_policy::{ErrorReply, refusal},
    database::Credentials,
};

/// A redis-server given with `--redis` that the simulator cannot use.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("--redis {0}: expected HOST:PORT with a numeric port")]
    Address(String),
    #[error("redis-server {address}: {action}: {source}")]
    Redis {
        address: String,
        action: &'static str,
        #[source]
        source: redis::RedisError,
    },
}

fn redis_error(address: &str, action: &'static str) -> impl FnOnce(redis::RedisError) -> BackendError {
    let address = address.to_owned();
    move |source| BackendError::Redis { address, action, source }
}

/// The simulator's own ACL user on every redis-server it manages.
pub const ADMIN_USER: &str = "upstash-sim";

/// The simulator's administrative connection to one redis-server.
#[derive(Clone)]
pub struct RedisBackend {
    pub address: String,
    conn: MultiplexedConnection,
}

impl RedisBackend {
    /// Connects to `address` and creates an ACL user of the simulator's own,
    /// so later password changes of `default` never lock it out.
    /// `default_password` is tried when the server already requires one.
    pub async fn connect(address: &str, default_password: Option<&str>) -> Result<Self, BackendError> {
        let mut conn = match open(address, None).await {
            Ok(conn) => conn,
            Err(first) => match default_password {
                Some(pw) => open(address, Some(("default", pw))).await?,
                None => return Err(first),
            },
        };
        let admin_password = Uuid::new_v4().simple().to_string();
        redis::cmd("ACL")
            .arg(&[
                "SETUSER",
                ADMIN_USER,
                "on",
                "resetpass",
                &format!(">{admin_password}"),
                "~*",
                "&*",
                "+@all",
            ])
            .query_async::<()>(&mut conn)
            .await
            .map_err(redis_error(address, "cannot create the simulator's ACL user"))?;
        let mut conn = open(address, Some((ADMIN_USER, &admin_password))).await?;
        let _: String = conn.ping().await.map_err(redis_error(address, "PING as the simulator's user"))?;
        Ok(Self { address: address.to_owned(), conn })
    }

    /// Makes `credentials` the only ones the server accepts: the password for
    /// `default`, the read-only token for `default_ro`.
    pub async fn set_credentials(&self, credentials: &Credentials) -> Result<(), BackendError> {
        let mut conn = self.conn.clone();
        let users = [
            ("default", credentials.password.as_str(), "+@all"),
            ("default_ro", credentials.read_only_rest_token.as_str(), "+@read"),
        ];
        for (user, password, commands) in users {
            redis::cmd("ACL")
                .arg(&[
                    "SETUSER",
                    user,
                    "on",
                    "resetpass",
                    &format!(">{password}"),
                    "~*",
                    "&*",
                    "-@all",
                    commands,
                ])
                .query_async::<()>(&mut conn)
                .await
                .map_err(redis_error(&self.address, "cannot set a managed user's password"))?;
        }
        Ok(())
    }

    /// Runs one command for the REST data plane.
    pub async fn execute(&self, args: &[String]) -> Result<redis::Value, ErrorReply> {
        let name = args.first().ok_or_else(|| ErrorReply("ERR empty command".into()))?;
        // The data plane checks first; this keeps the backend safe on its own.
        if let Some(error) = refusal(args) {
            return Err(error);
        }
        let mut cmd = redis::cmd(name);
        cmd.arg(&args[1..]);
        cmd.query_async(&mut self.conn.clone()).await.map_err(|e| ErrorReply(e.to_string()))
    }

    /// Runs commands in order; `atomic` wraps them in MULTI/EXEC.
    pub async fn execute_many(
        &self,
        commands: &[Vec<String>],
        atomic: bool,
    ) -> Vec<Result<redis::Value, ErrorReply>> {
        if atomic {
            let mut pipe = redis::pipe();
            pipe.atomic();
            for args in commands {
                if let Some(error) = refusal(args) {
                    return commands.iter().map(|_| Err(error.clone())).collect();
                }
                if let Some(name) = args.first() {
                    pipe.cmd(name).arg(&args[1..]);
                }
            }
            return match pipe.query_async::<Vec<redis::Value>>(&mut self.conn.clone()).await {
                Ok(replies) => replies.into_iter().map(Ok).collect(),
                Err(e) => commands.iter().map(|_| Err(ErrorReply(e.to_string()))).collect(),
            };
        }
        let mut out = Vec::with_capacity(commands.len());
        for args in commands {
            out.push(self.execute(args).await);
        }
        out
    }
}

async fn open(address: &str, user: Option<(&str, &str)>) -> Result<MultiplexedConnection, BackendError> {
    let mut settings = redis::RedisConnectionInfo::default();
    if let Some((user, password)) = user {
        settings = settings.set_username(user).set_password(password);
    }
    let info = parse_address(address)?
        .into_connection_info()
        .map_err(redis_error(address, "invalid address"))?
        .set_redis_settings(settings);
    let client = redis::Client::open(info).map_err(redis_error(address, "invalid address"))?;
    let mut conn =
        client.get_multiplexed_async_connection().await.map_err(redis_error(address, "cannot connect"))?;
    // Connecting does not prove authentication on RESP2; a PING does.
    let _: String = conn.ping().await.map_err(redis_error(address, "PING"))?;
    Ok(conn)
}

fn parse_address(address: &str) -> Result<redis::ConnectionAddr, BackendError> {
    let invalid = || BackendError::Address(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    Ok(redis::ConnectionAddr::Tcp(host.to_owned(), port))
}
