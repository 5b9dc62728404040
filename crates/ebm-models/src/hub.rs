//! Models on the Hugging Face hub: `hf://OWNER/REPO[@REVISION][/FILE]` model specs, resolved offline-first through
//! the standard hub cache, and hub-ready folders for converted models.
//!
//! A spec resolves to a file in the cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
//! `~/.cache/huggingface/hub`, in the layout `models--OWNER--REPO/{refs,snapshots,blobs}` that the Python and Rust
//! hub clients share). A cached file is used without touching the network; a missing one is downloaded unless
//! `HF_HUB_OFFLINE` is set, in which case the error says what to download and where it would go.

use std::path::{Path, PathBuf};

/// The scheme of hub model specs.
pub const SCHEME: &str = "hf://";
/// The file a spec without `/FILE` names.
pub const DEFAULT_FILE: &str = "model.safetensors";

/// What can go wrong resolving a hub spec.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("`{spec}`: {reason} (the form is hf://OWNER/REPO[@REVISION][/FILE])")]
    Spec { spec: String, reason: String },
    #[error("{0}")]
    NotCached(String),
    #[error("`{spec}`: download failed: {reason}")]
    Download { spec: String, reason: String },
    #[error("{path}: {reason}")]
    Folder { path: PathBuf, reason: String },
}

/// A parsed `hf://OWNER/REPO[@REVISION][/FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpec {
    /// `OWNER/REPO`.
    pub repo: String,
    /// A branch, tag or 40-digit commit; `main` when not given.
    pub revision: String,
    /// A path inside the repository; [`DEFAULT_FILE`] when not given.
    pub file: String,
}

impl HubSpec {
    /// Whether `s` is a hub spec (rather than a local path).
    pub fn is_hub(s: &str) -> bool {
        s.starts_with(SCHEME)
    }

    /// Parses `hf://OWNER/REPO[@REVISION][/FILE]`.
    pub fn parse(spec: &str) -> Result<Self, HubError> {
        let bad = |reason: &str| HubError::Spec { spec: spec.to_string(), reason: reason.to_string() };
        let rest = spec.strip_prefix(SCHEME).ok_or_else(|| bad("does not start with hf://"))?;
        let (owner, rest) = rest.split_once('/').ok_or_else(|| bad("no `/` between owner and repository"))?;
        let end = rest.find(['@', '/']).unwrap_or(rest.len());
        let (name, mut rest) = rest.split_at(end);
        let mut revision = "main".to_string();
        if let Some(r) = rest.strip_prefix('@') {
            let end = r.find('/').unwrap_or(r.len());
            revision = r[..end].to_string();
            rest = &r[end..];
            if revision.is_empty() {
                return Err(bad("an empty revision after `@`"));
            }
        }
        let file = match rest.strip_prefix('/') {
            Some("") | None => DEFAULT_FILE.to_string(),
            Some(f) => f.to_string(),
        };
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok(owner) || !ok(name) {
            return Err(bad("owner and repository are letters, digits, `-`, `_` and `.`"));
        }
        if file.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(bad("the file path has an empty, `.` or `..` part"));
        }
        Ok(Self { repo: format!("{owner}/{name}"), revision, file })
    }

    fn display(&self) -> String {
        format!("{SCHEME}{}@{}/{}", self.repo, self.revision, self.file)
    }
}

/// Where and how specs resolve: by default from the environment ([`HubEnv::from_env`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubEnv {
    /// The hub cache folder (the one holding `models--OWNER--REPO`).
    pub cache: PathBuf,
    /// Never touch the network.
    pub offline: bool,
    /// The hub's address (`HF_ENDPOINT`), `https://huggingface.co` by default.
    pub endpoint: String,
}

impl HubEnv {
    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`; `HF_HUB_OFFLINE` (1, true, yes, on);
    /// `HF_ENDPOINT`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let cache = var("HF_HUB_CACHE").map(PathBuf::from).unwrap_or_else(|| match var("HF_HOME") {
            Some(home) => PathBuf::from(home).join("hub"),
            None => var("HOME").map(PathBuf::from).unwrap_or_default().join(".cache/huggingface/hub"),
        });
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false);
        let endpoint = std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".into());
        Self { cache, offline, endpoint }
    }

    fn repo(&self, spec: &HubSpec) -> hf_hub::CacheRepo {
        let repo = hf_hub::Repo::with_revision(spec.repo.clone(), hf_hub::RepoType::Model, spec.revision.clone());
        hf_hub::Cache::new(self.cache.clone()).repo(repo)
    }

    /// The cached copy of `spec`'s file, if there is one (no network).
    pub fn cached(&self, spec: &HubSpec) -> Option<PathBuf> {
        let repo = self.repo(spec);
        let is_commit = spec.revision.len() == 40 && spec.revision.chars().all(|c| c.is_ascii_hexdigit());
        let found = if is_commit {
            Some(repo.pointer_path(&spec.revision).join(&spec.file)).filter(|p| p.exists())
        } else {
            repo.get(&spec.file)
        };
        found.filter(|p| p.is_file())
    }

    /// The local file for `spec`: the cached copy, else a download into the cache (refused when offline).
    pub fn resolve(&self, spec: &HubSpec) -> Result<PathBuf, HubError> {
        if let Some(p) = self.cached(spec) {
            tracing::debug!("{} -> {} (cached)", spec.display(), p.display());
            return Ok(p);
        }
        let folder = self.cache.join(format!("models--{}", spec.repo.replace('/', "--")));
        if self.offline {
            return Err(HubError::NotCached(format!(
                "`{}` is not in the hub cache ({}) and HF_HUB_OFFLINE forbids downloading it; on a machine with \
                 network run `huggingface-cli download {} {} --revision {}` with the same cache (HF_HOME / \
                 HF_HUB_CACHE), or unset HF_HUB_OFFLINE",
                spec.display(),
                folder.display(),
                spec.repo,
                spec.file,
                spec.revision
            )));
        }
        tracing::info!("downloading {} into {}", spec.display(), folder.display());
        let download_err = |reason: String| HubError::Download {
            spec: spec.display(),
            reason: format!(
                "{reason} (it would be cached under {}; set HF_HUB_OFFLINE=1 to never try)",
                folder.display()
            ),
        };
        let api = hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(self.cache.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .build()
            .map_err(|e| download_err(e.to_string()))?;
        let repo = hf_hub::Repo::with_revision(spec.repo.clone(), hf_hub::RepoType::Model, spec.revision.clone());
        api.repo(repo).download(&spec.file).map_err(|e| download_err(e.to_string()))
    }
}

/// The local file a `--model` argument names: a hub spec resolved through [`HubEnv::from_env`], or the path
/// itself.
pub fn resolve_model_path(arg: &Path) -> Result<PathBuf, HubError> {
    match arg.to_str() {
        Some(s) if HubSpec::is_hub(s) => HubEnv::from_env().resolve(&HubSpec::parse(s)?),
        _ => Ok(arg.to_path_buf()),
    }
}

/// What a hub-ready folder says about where its model came from.
#[derive(Debug, Clone)]
pub struct ModelCard {
    /// One line: what the model is.
    pub title: String,
    /// Where the weights come from (paper, release, checkpoint path).
    pub source: String,
    /// The license terms of the weights, as far as they are known.
    pub license: String,
    /// The command that produced the folder.
    pub command: String,
}

/// Writes `model.safetensors` (the bytes of a saved model), `config.json` (its model config) and a `README.md`
/// model card into a new folder `dir`, all or nothing: the files go to a temporary folder beside it that is
/// renamed into place. An existing non-empty `dir` is refused.
pub fn write_hub_folder(dir: &Path, model_file: &Path, config_json: &str, card: &ModelCard) -> Result<(), HubError> {
    let fail = |reason: String| HubError::Folder { path: dir.to_path_buf(), reason };
    if dir.exists() && std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(true) {
        return Err(fail("exists and is not empty; choose a new folder".into()));
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| fail(format!("creating its parent: {e}")))?;
    let tmp = tempfile::Builder::new()
        .prefix(".hub-folder.")
        .tempdir_in(parent)
        .map_err(|e| fail(format!("creating a temporary folder: {e}")))?;
    std::fs::copy(model_file, tmp.path().join("model.safetensors"))
        .map_err(|e| fail(format!("copying {}: {e}", model_file.display())))?;
    let config: serde_json::Value = serde_json::from_str(config_json).map_err(|e| fail(format!("config: {e}")))?;
    let config = serde_json::json!({ "library_name": "ebm", "model_config": config, "source": card.source });
    let write = |name: &str, text: String| {
        ebm_io::write_atomic(&tmp.path().join(name), text.as_bytes()).map_err(|e| fail(e.to_string()))
    };
    write("config.json", serde_json::to_string_pretty(&config).expect("json serialises") + "\n")?;
    write("README.md", card_text(card, config_json))?;
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(|e| fail(e.to_string()))?;
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        fail(format!("moving the finished folder into place: {e}"))
    })
}

fn card_text(card: &ModelCard, config_json: &str) -> String {
    format!(
        "---\nlibrary_name: ebm\nlicense: other\ntags:\n- energy-based-model\n- igebm\n---\n\n# {title}\n\n\
         An energy-based model for the `ebm` Rust workspace: `model.safetensors` holds its weights, spectral-norm \
         state and config (metadata `ebm.model_config`).\n\n\
         ```sh\ncargo run --release -p ebm-train -- sample --model hf://OWNER/REPO --out samples\n```\n\n\
         ## Source\n\n{source}\n\n## License\n\n{license}\n\n## How this folder was made\n\n\
         ```sh\n{command}\n```\n\n## Model config\n\n```json\n{config_json}\n```\n",
        title = card.title,
        source = card.source,
        license = card.license,
        command = card.command,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_defaults_and_reject_nonsense() {
        let s = HubSpec::parse("hf://ebm-rs/igebm-cifar10").unwrap();
        assert_eq!(
            (s.repo.as_str(), s.revision.as_str(), s.file.as_str()),
            ("ebm-rs/igebm-cifar10", "main", DEFAULT_FILE)
        );
        let s = HubSpec::parse("hf://a/b@v1.0/sub/m.safetensors").unwrap();
        assert_eq!((s.repo.as_str(), s.revision.as_str(), s.file.as_str()), ("a/b", "v1.0", "sub/m.safetensors"));
        let s = HubSpec::parse("hf://a/b/x.safetensors").unwrap();
        assert_eq!((s.revision.as_str(), s.file.as_str()), ("main", "x.safetensors"));
        for bad in ["hf://a", "hf:///b", "hf://a/", "hf://a/b@", "hf://a/b/../x", "hf://a b/c", "a/b"] {
            assert!(HubSpec::parse(bad).is_err(), "{bad}");
        }
    }
}
