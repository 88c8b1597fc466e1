//! argon2id password hashing on its own two threads with a bounded queue: a login flood
//! of any kind waits in (or is refused by) that queue, and never runs more than two hashes
//! at once. Two fixed threads also bound the memory: each argon2id hash takes 19 MiB, and
//! the allocator keeps an arena per thread that ever hashed (on the runtime's blocking
//! pool, hundreds of threads kept gigabytes).

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;

use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::Argon2;
use parking_lot::Mutex;
use tokio::sync::oneshot;

/// Hashes at once.
const THREADS: usize = 2;
/// Logins waiting for a hashing thread before new ones are refused (429).
const QUEUE: usize = 32;
/// New passwords (a source created, a password set) hashed or waiting at most: the rest of
/// the queue is kept for known reporters' logins, so a flood of invented sources with
/// passwords cannot keep a real reporter out.
const NEW_PASSWORDS: usize = QUEUE / 2;

/// The queue is full: the caller answers 429 with `Retry-After`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

enum Task {
    Hash(String),
    Verify(String, String),
}

enum Answer {
    Hashed(String),
    Verified(bool),
}

struct Job {
    task: Task,
    reply: oneshot::Sender<Answer>,
}

#[derive(Clone)]
pub struct Hasher {
    jobs: SyncSender<Job>,
    new_passwords: Arc<std::sync::atomic::AtomicUsize>,
}

impl Default for Hasher {
    fn default() -> Self {
        let (jobs, receiver) = mpsc::sync_channel::<Job>(QUEUE);
        let receiver = Arc::new(Mutex::new(receiver));
        for i in 0..THREADS {
            let receiver = receiver.clone();
            std::thread::Builder::new()
                .name(format!("ufrecs-argon2-{i}"))
                .spawn(move || loop {
                    // The lock is held only to take a job, not while hashing.
                    let job = receiver.lock().recv();
                    let Ok(Job { task, reply }) = job else { return };
                    let answer = match task {
                        Task::Hash(p) => Answer::Hashed(hash_now(&p)),
                        Task::Verify(p, h) => Answer::Verified(verify_now(&p, &h)),
                    };
                    let _ = reply.send(answer);
                })
                .expect("spawn a hashing thread");
        }
        Self { jobs, new_passwords: Arc::default() }
    }
}

pub fn hash_now(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password with default parameters")
        .to_string()
}

pub fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

impl Hasher {
    async fn run(&self, task: Task) -> Result<Answer, Busy> {
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job { task, reply }) {
            Ok(()) => answer.await.map_err(|_| Busy),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => Err(Busy),
        }
    }

    pub async fn hash(&self, password: String) -> Result<String, Busy> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.new_passwords.fetch_add(1, SeqCst) >= NEW_PASSWORDS {
            self.new_passwords.fetch_sub(1, SeqCst);
            return Err(Busy);
        }
        let answer = self.run(Task::Hash(password)).await;
        self.new_passwords.fetch_sub(1, SeqCst);
        match answer? {
            Answer::Hashed(h) => Ok(h),
            Answer::Verified(_) => unreachable!("a hash task answers a hash"),
        }
    }

    pub async fn verify(&self, password: String, hash: String) -> Result<bool, Busy> {
        match self.run(Task::Verify(password, hash)).await? {
            Answer::Verified(ok) => Ok(ok),
            Answer::Hashed(_) => unreachable!("a verify task answers a verdict"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_and_verifies_only_its_password() {
        let h = hash_now("correct horse");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_now("correct horse", &h));
        assert!(!verify_now("wrong", &h));
        assert!(!verify_now("correct horse", "not a hash"));
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_instead_of_growing() {
        let hasher = Hasher::default();
        let tasks: Vec<_> = (0..(QUEUE + THREADS + 20))
            .map(|_| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash("p".into()).await })
            })
            .collect();
        let mut busy = 0;
        for t in tasks {
            if t.await.unwrap().is_err() {
                busy += 1;
            }
        }
        assert!(busy >= 1, "more logins than the queue holds are refused");
        assert!(hasher.verify("p".into(), hash_now("p")).await.unwrap());
    }
}
