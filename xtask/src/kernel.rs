//! Guest kernel: pinned Debian source, config fragment merge + verification,
//! out-of-tree build into the cache, and the out-of-tree module build.

use crate::apt::{self, PrivateApt};
use crate::bindgen::{self, Bindgen};
use crate::setup::Toolchain;
use crate::util::{self, step, Hasher};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Deserialize)]
pub struct Pin {
    pub package: String,
    pub version: String,
    pub suite: String,
    pub sha256: String,
    pub tarball: String,
}

/// `images/kernel-source.toml`, or `$IRQSTORM_KERNEL_PIN` (for experiments).
pub fn pin_path(repo: &Path) -> PathBuf {
    std::env::var_os("IRQSTORM_KERNEL_PIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("images/kernel-source.toml"))
}

/// `images/kernel.config`, or `$IRQSTORM_KERNEL_CONFIG` (for experiments).
pub fn fragment_path(repo: &Path) -> PathBuf {
    std::env::var_os("IRQSTORM_KERNEL_CONFIG")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("images/kernel.config"))
}

pub fn load_pin(repo: &Path) -> Result<Pin> {
    let p = pin_path(repo);
    let text = std::fs::read_to_string(&p).with_context(|| format!("read {}", p.display()))?;
    toml::from_str(&text).with_context(|| format!("parse {}", p.display()))
}

// ---------------------------------------------------------------- variants

/// The default kernel variant: `images/kernel.config` alone (PREEMPT).
pub const DEFAULT_VARIANT: &str = "preempt";

/// Where the other variants' fragments are: `NAME.config`, merged after
/// `images/kernel.config`.
pub fn variants_dir(repo: &Path) -> PathBuf {
    repo.join("images/kernel-variants")
}

/// Every variant: the default first, then the fragments' names, sorted.
pub fn variants(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(variants_dir(repo))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_suffix(".config"))
                        .map(str::to_string)
                })
                .filter(|n| n != DEFAULT_VARIANT)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.insert(0, DEFAULT_VARIANT.to_string());
    names
}

/// A kernel variant: its name and fragment (none for the default).
#[derive(Debug, Clone)]
pub struct Variant {
    pub name: String,
    /// (path, text) of `images/kernel-variants/NAME.config`.
    pub fragment: Option<(PathBuf, String)>,
}

impl Variant {
    pub fn load(repo: &Path, name: &str) -> Result<Variant> {
        if name == DEFAULT_VARIANT {
            return Ok(Variant {
                name: name.into(),
                fragment: None,
            });
        }
        let path = variants_dir(repo).join(format!("{name}.config"));
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || !path.is_file()
        {
            bail!(
                "unknown kernel variant {name:?}: one of {} (fragments in {})",
                variants(repo).join(", "),
                variants_dir(repo).display()
            );
        }
        let text =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        Ok(Variant {
            name: name.into(),
            fragment: Some((path, text)),
        })
    }
}

/// The common fragment with a variant's on top: the variant's options
/// replace the common ones of the same name and come last (a choice member
/// read last wins, see [`merge`]).
pub fn combine(common: &[Opt], variant: &[Opt]) -> Vec<Opt> {
    let mut out: Vec<Opt> = common
        .iter()
        .filter(|o| !variant.iter().any(|v| v.name == o.name))
        .cloned()
        .collect();
    out.extend(variant.iter().cloned());
    out
}

// ---------------------------------------------------------------- fragment

/// One option of the fragment: name (with CONFIG_) and wanted value ("n" for
/// "is not set").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt {
    pub name: String,
    pub value: String,
    pub line: usize,
}

/// Parse `images/kernel.config`: `CONFIG_X=v   # reason` and
/// `# CONFIG_X is not set   # reason`. Other `#` lines are comments.
pub fn parse_fragment(text: &str) -> Result<Vec<Opt>> {
    let mut out: Vec<Opt> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let s = raw.trim();
        if s.is_empty() {
            continue;
        }
        let (name, value) = if let Some(rest) = s.strip_prefix("# CONFIG_") {
            match rest.split_once(" is not set") {
                Some((n, _)) => (format!("CONFIG_{}", n.trim()), "n".to_string()),
                None => continue,
            }
        } else if s.starts_with('#') {
            continue;
        } else if let Some((n, v)) = s.split_once('=') {
            let v = strip_comment(v);
            if !n.starts_with("CONFIG_") || v.is_empty() {
                bail!("kernel config fragment line {line}: cannot parse {s:?}");
            }
            (n.trim().to_string(), v)
        } else {
            bail!("kernel config fragment line {line}: cannot parse {s:?}");
        };
        if !name[7..]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            bail!("kernel config fragment line {line}: bad option name {name:?}");
        }
        if let Some(prev) = out.iter().find(|o| o.name == name) {
            bail!(
                "kernel config fragment line {line}: {name} already set on line {}",
                prev.line
            );
        }
        out.push(Opt { name, value, line });
    }
    Ok(out)
}

/// Strip a trailing "# reason" from a value, honouring "quoted # strings".
fn strip_comment(v: &str) -> String {
    let mut in_q = false;
    let mut prev = ' ';
    for (i, c) in v.char_indices() {
        match c {
            '"' if prev != '\\' => in_q = !in_q,
            '#' if !in_q => return v[..i].trim().to_string(),
            _ => {}
        }
        prev = c;
    }
    v.trim().to_string()
}

/// Values in a .config: "n" for "# CONFIG_X is not set".
pub fn read_config(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# CONFIG_") {
            if let Some((n, _)) = rest.split_once(" is not set") {
                m.insert(format!("CONFIG_{n}"), "n".into());
            }
        } else if let Some((n, v)) = l.split_once('=') {
            if n.starts_with("CONFIG_") {
                m.insert(n.to_string(), v.to_string());
            }
        }
    }
    m
}

fn config_line(o: &Opt) -> String {
    if o.value == "n" {
        format!("# {} is not set", o.name)
    } else {
        format!("{}={}", o.name, o.value)
    }
}

/// Apply the fragment to a .config the way scripts/kconfig/merge_config.sh
/// does: drop the base's lines for the fragment's options and append the
/// fragment at the end. Order matters for choices: kconfig gives priority to
/// the member set to y that it reads LAST (confdata.c moves it to the head
/// of the choice's member list), so appended fragment values win over
/// tinyconfig's (e.g. PREEMPT over PREEMPT_NONE).
pub fn merge(config: &str, frag: &[Opt]) -> String {
    let mut out = String::new();
    for l in config.lines() {
        let name = if let Some(rest) = l.strip_prefix("# CONFIG_") {
            rest.split_once(" is not set")
                .map(|(n, _)| format!("CONFIG_{n}"))
        } else {
            l.split_once('=')
                .filter(|(n, _)| n.starts_with("CONFIG_"))
                .map(|(n, _)| n.to_string())
        };
        if !name.is_some_and(|n| frag.iter().any(|o| o.name == n)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out.push_str("# --- images/kernel.config ---\n");
    for o in frag {
        out.push_str(&config_line(o));
        out.push('\n');
    }
    out
}

/// Options whose final value differs from the fragment: (option, wanted, got).
pub fn verify(config: &str, frag: &[Opt]) -> Vec<(String, String, String)> {
    let have = read_config(config);
    let mut bad = Vec::new();
    for o in frag {
        let got = have.get(&o.name).cloned().unwrap_or_else(|| "n".into());
        if got != o.value {
            let shown = if have.contains_key(&o.name) {
                got
            } else {
                "absent (not selectable: unmet dependency?)".into()
            };
            bad.push((o.name.clone(), o.value.clone(), shown));
        }
    }
    bad
}

fn mismatch_message(bad: &[(String, String, String)], frags: &str) -> String {
    let list = bad
        .iter()
        .map(|(n, w, g)| format!("{n}: wanted {w}, got {g}"))
        .collect::<Vec<_>>()
        .join("; ");
    format!("kernel option(s) from {frags} did not stick after olddefconfig: {list}")
}

// ---------------------------------------------------------------- build

/// A kernel ready for use: bzImage and a tree to build modules against.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub build_dir: PathBuf,
    pub bzimage: PathBuf,
    /// Cache key of this kernel (used to key modules and probes).
    pub key: String,
    /// The kernel variant it was configured as (`--kernel-variant`).
    pub variant: String,
}

fn make(src: &Path, out: Option<&Path>, bindgen: &Path) -> Command {
    let mut c = Command::new("make");
    c.arg("-C").arg(src);
    if let Some(o) = out {
        c.arg(format!("O={}", o.display()));
    }
    c.arg("ARCH=x86_64")
        .arg(format!("BINDGEN={}", bindgen.display()))
        .env("PATH", util::tool_path())
        .env("LIBCLANG_PATH", util::LIBCLANG_PATH);
    c
}

/// The bindgen for building `src` (at least its minimum), said once.
fn bindgen_for(src: &Path, cache: &Path, apt: &mut PrivateApt) -> Result<Bindgen> {
    let min = bindgen::kernel_minimum(src)?;
    let b = bindgen::resolve(cache, apt, min)?;
    step(&format!(
        "bindgen: {} [{}] ({})",
        b.version,
        b.origin,
        b.program.display()
    ));
    Ok(b)
}

/// Where the kernel comes from.
pub enum Source {
    /// The pinned Debian package.
    Pinned,
    /// A user's tree (`--kernel-tree`).
    Tree(PathBuf),
}

pub fn prepare(
    repo: &Path,
    cache: &Path,
    source: &Source,
    tools: &Toolchain,
    variant: &Variant,
    apt: &mut PrivateApt,
) -> Result<Kernel> {
    let frag_path = fragment_path(repo);
    let frag_text = std::fs::read_to_string(&frag_path)
        .with_context(|| format!("read {}", frag_path.display()))?;
    let mut frag = parse_fragment(&frag_text).with_context(|| frag_path.display().to_string())?;
    let mut frags = frag_path.display().to_string();
    if let Some((path, text)) = &variant.fragment {
        let v = parse_fragment(text).with_context(|| path.display().to_string())?;
        frag = combine(&frag, &v);
        frags = format!("{frags} + {}", path.display());
    }
    // The default variant keys its builds as before variants existed (its
    // caches stay valid); another adds its name and fragment.
    let add_variant = |h: &mut Hasher| {
        if let Some((_, text)) = &variant.fragment {
            h.add("variant").add(&variant.name).add(text.as_bytes());
        }
    };
    match source {
        Source::Tree(dir) => {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("--kernel-tree {}", dir.display()))?;
            let bz = dir.join("arch/x86/boot/bzImage");
            if dir.join(".config").exists() && bz.exists() {
                // A configured and built tree: use as is.
                let config = std::fs::read_to_string(dir.join(".config"))?;
                let bad = verify(&config, &frag);
                if !bad.is_empty() {
                    log::warn!("{} (using the tree anyway)", mismatch_message(&bad, &frags));
                    eprintln!(
                        "warning: {} differs from {} in {} option(s); tests may fail",
                        dir.display(),
                        frags,
                        bad.len()
                    );
                }
                let meta = std::fs::metadata(&bz)?;
                let mut h = Hasher::new("kernel-tree-built");
                h.add(dir.as_os_str().as_encoded_bytes())
                    .add(config.as_bytes())
                    .add(format!("{:?}", meta.modified().ok()));
                step(&format!("kernel: using built tree {}", dir.display()));
                return Ok(Kernel {
                    build_dir: dir,
                    bzimage: bz,
                    key: h.short(),
                    variant: variant.name.clone(),
                });
            }
            if dir.join("Kconfig").exists() && dir.join("Makefile").exists() {
                let bg = bindgen_for(&dir, cache, apt)?;
                let mut h = Hasher::new("kernel-tree-src");
                h.add(dir.as_os_str().as_encoded_bytes())
                    .add(frag_text.as_bytes())
                    .add(tools.fingerprint(&bg.version));
                add_variant(&mut h);
                let out = cache.join(format!("kernel-{}", h.short()));
                // A user tree may change at any time: always run make (a
                // no-op make takes seconds).
                build(&dir, &out, &frag, &frags, &h.short(), true, &bg)?;
                return Ok(Kernel {
                    bzimage: out.join("arch/x86/boot/bzImage"),
                    build_dir: out,
                    key: h.short(),
                    variant: variant.name.clone(),
                });
            }
            bail!(
                "--kernel-tree {}: neither a built tree (.config + arch/x86/boot/bzImage) nor a source tree (Kconfig + Makefile)",
                dir.display()
            );
        }
        Source::Pinned => {
            let pin = load_pin(repo)?;
            let src = fetch_source(cache, &pin, apt)?;
            let bg = bindgen_for(&src, cache, apt)?;
            let mut h = Hasher::new("kernel-pinned");
            h.add(&pin.package)
                .add(&pin.version)
                .add(&pin.sha256)
                .add(frag_text.as_bytes())
                .add(tools.fingerprint(&bg.version));
            add_variant(&mut h);
            let key = h.short();
            let out = cache.join(format!("kernel-{key}"));
            build(&src, &out, &frag, &frags, &key, false, &bg)?;
            Ok(Kernel {
                bzimage: out.join("arch/x86/boot/bzImage"),
                build_dir: out,
                key,
                variant: variant.name.clone(),
            })
        }
    }
}

/// The unpacked pinned source tree (cached, verified).
fn fetch_source(cache: &Path, pin: &Pin, apt: &mut PrivateApt) -> Result<PathBuf> {
    let dir = cache.join(format!(
        "src-{}-{}-{}",
        pin.package,
        pin.version.replace('~', "_"),
        &pin.sha256[..12]
    ));
    let tree = dir.join("linux");
    if tree.join("Makefile").exists() {
        return Ok(tree);
    }
    step(&format!(
        "kernel source: downloading {} {} ({})",
        pin.package, pin.version, pin.suite
    ));
    util::with_tmp_dir(&dir, |tmp| {
        let tmp = tmp.to_path_buf();
        let deb = apt
            .download(&pin.package, &pin.version, &tmp.join("deb"))?
            .ok_or_else(|| {
                anyhow!(
                    "kernel package {} version {} is not served by the Debian mirror ({} {}). \
                     Update the pin ({}), or point at a local kernel tree: \
                     cargo xtask --kernel-tree DIR ... (or IRQSTORM_KERNEL_TREE=DIR)",
                    pin.package,
                    pin.version,
                    apt::MIRROR,
                    pin.suite,
                    pin_path(&crate::util::repo_root()).display()
                )
            })?;
        let sum = util::sha256_file(&deb)?;
        if sum != pin.sha256 {
            bail!(
                "{}: sha256 {sum} does not match the pin {} in {}",
                deb.display(),
                pin.sha256,
                pin_path(&crate::util::repo_root()).display()
            );
        }
        step("kernel source: sha256 verified; unpacking");
        apt::extract_deb(&deb, &tmp.join("x"))?;
        let tarball = tmp.join("x").join(&pin.tarball);
        let unpack = tmp.join("unpack");
        std::fs::create_dir_all(&unpack)?;
        util::output(
            Command::new("tar")
                .arg("-xf")
                .arg(&tarball)
                .arg("-C")
                .arg(&unpack),
        )?;
        let top = std::fs::read_dir(&unpack)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.join("Makefile").exists())
            .ok_or_else(|| anyhow!("{} has no kernel tree", tarball.display()))?;
        std::fs::rename(&top, tmp.join("linux"))?;
        std::fs::remove_dir_all(tmp.join("x"))?;
        std::fs::remove_dir_all(&unpack)?;
        std::fs::remove_dir_all(tmp.join("deb"))?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::rename(&tmp, &dir)?;
        Ok(())
    })?;
    Ok(tree)
}

const STAMP: &str = ".irqstorm-complete";

/// Configure and build `src` into `out`. The stamp file is written last, so an
/// interrupted build is never taken for a complete one (and resumes).
fn build(
    src: &Path,
    out: &Path,
    frag: &[Opt],
    frags: &str,
    key: &str,
    always_make: bool,
    bindgen: &Bindgen,
) -> Result<()> {
    let stamp = out.join(STAMP);
    if !always_make
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == key)
        && out.join("Module.symvers").exists()
    {
        step(&format!("kernel: cached ({})", out.display()));
        return Ok(());
    }
    std::fs::create_dir_all(out)?;
    let _ = std::fs::remove_file(&stamp);
    let log = out.join("build.log");
    let config = out.join(".config");
    let config_ok = std::fs::read_to_string(&config)
        .map(|c| verify(&c, frag).is_empty())
        .unwrap_or(false);
    if !config_ok || !always_make {
        step(&format!(
            "kernel: configuring (tinyconfig + {}) in {}",
            frags,
            out.display()
        ));
        util::run_logged(
            make(src, Some(out), &bindgen.program).arg("tinyconfig"),
            "tinyconfig",
            &log,
        )?;
        let base = std::fs::read_to_string(&config)?;
        util::write_atomic(&config, merge(&base, frag).as_bytes())?;
        util::run_logged(
            make(src, Some(out), &bindgen.program).arg("olddefconfig"),
            "olddefconfig",
            &log,
        )?;
        let final_cfg = std::fs::read_to_string(&config)?;
        let bad = verify(&final_cfg, frag);
        if !bad.is_empty() {
            bail!("{}", mismatch_message(&bad, frags));
        }
        step(&format!(
            "kernel: all {} fragment options verified",
            frag.len()
        ));
    }
    let jobs = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    step(&format!(
        "kernel: building bzImage modules_prepare modules with -j{jobs} (log: {})",
        log.display()
    ));
    // Step count of the last full build, for a rough percentage.
    let steps_file = out.parent().unwrap_or(out).join("kernel-build-steps");
    let expected = std::fs::read_to_string(&steps_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .or(Some(1778));
    let steps = util::run_logged_expect(
        make(src, Some(out), &bindgen.program)
            .arg(format!("-j{jobs}"))
            .arg("bzImage")
            .arg("modules_prepare")
            // `modules` makes modpost write Module.symvers, which external
            // module builds need (bzImage alone writes vmlinux.symvers).
            .arg("modules"),
        "kernel build",
        &log,
        expected,
    )?;
    if steps > 1000 {
        let _ = std::fs::write(&steps_file, steps.to_string());
    }
    std::fs::write(&stamp, key)?;
    Ok(())
}

/// Module sources under `dir` (recursive): Kbuild, Makefile, *.rs, *.c, *.h.
fn source_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let p = e?.path();
        let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if n.starts_with('.') {
            continue;
        }
        if p.is_dir() {
            source_files(&p, out)?;
        } else if n == "Kbuild"
            || n == "Makefile"
            || ([".rs", ".c", ".h"].iter().any(|e| n.ends_with(e)) && !n.ends_with(".mod.c"))
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Build the out-of-tree module in `module_src` against `k`; returns the .ko.
pub fn build_module(cache: &Path, k: &Kernel, module_src: &Path) -> Result<PathBuf> {
    let mut h = Hasher::new("module");
    h.add(&k.key);
    let mut files = Vec::new();
    source_files(module_src, &mut files)?;
    files.sort();
    if !files
        .iter()
        .any(|f| f.ends_with("Kbuild") || f.ends_with("Makefile"))
    {
        bail!("{} has no Kbuild/Makefile", module_src.display());
    }
    for f in &files {
        h.add(
            f.strip_prefix(module_src)
                .unwrap_or(f)
                .as_os_str()
                .as_encoded_bytes(),
        );
        h.add(std::fs::read(f)?);
    }
    let out = cache.join(format!("module-{}", h.short()));
    let ko = out.join("irqstorm.ko");
    if ko.exists() {
        step(&format!("module: cached ({})", ko.display()));
        return Ok(ko);
    }
    step(&format!("module: building {}", module_src.display()));
    let tmp = util::fresh_tmp_dir(&out)?;
    let log = tmp.join("build.log");
    let mut cmd = Command::new("make");
    if !k.build_dir.join("Module.symvers").exists() {
        eprintln!(
            "warning: {}/Module.symvers is missing (run `make modules` in that tree); \
             building the module with KBUILD_MODPOST_WARN=1",
            k.build_dir.display()
        );
        cmd.env("KBUILD_MODPOST_WARN", "1");
    }
    util::run_logged(
        cmd.arg("-C")
            .arg(&k.build_dir)
            .arg(format!("M={}", module_src.display()))
            .arg(format!("MO={}", tmp.display()))
            .arg("modules")
            .env("PATH", util::tool_path())
            .env("LIBCLANG_PATH", util::LIBCLANG_PATH),
        "module build",
        &log,
    )
    .map_err(|e| {
        let tail = std::fs::read_to_string(&log)
            .map(|t| {
                let errs: Vec<&str> = t.lines().filter(|l| l.contains("error")).take(5).collect();
                errs.join("\n    ")
            })
            .unwrap_or_default();
        anyhow!("{e}\n    {tail}")
    })?;
    if !tmp.join("irqstorm.ko").exists() {
        bail!(
            "module build produced no irqstorm.ko in {} (log: {})",
            tmp.display(),
            log.display()
        );
    }
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    std::fs::rename(&tmp, &out)?;
    Ok(ko)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAG: &str = "\
# header comment
CONFIG_64BIT=y                  # tinyconfig is 32-bit otherwise
CONFIG_NR_CPUS=8                # small
# CONFIG_MODVERSIONS is not set  # RUST depends on !MODVERSIONS
CONFIG_CMDLINE=\"a # b\"          # quoted hash stays
";

    #[test]
    fn fragment_parses_values_and_reasons() {
        let f = parse_fragment(FRAG).unwrap();
        let v: Vec<(&str, &str)> = f
            .iter()
            .map(|o| (o.name.as_str(), o.value.as_str()))
            .collect();
        assert_eq!(
            v,
            vec![
                ("CONFIG_64BIT", "y"),
                ("CONFIG_NR_CPUS", "8"),
                ("CONFIG_MODVERSIONS", "n"),
                ("CONFIG_CMDLINE", "\"a # b\"")
            ]
        );
    }

    #[test]
    fn fragment_rejects_duplicates_and_garbage() {
        assert!(parse_fragment("CONFIG_A=y\nCONFIG_A=n\n").is_err());
        assert!(parse_fragment("FOO=y\n").is_err());
        assert!(parse_fragment("CONFIG_A\n").is_err());
    }

    #[test]
    fn merge_drops_base_lines_and_appends_fragment_last() {
        let f = parse_fragment(FRAG).unwrap();
        let base =
            "# CONFIG_64BIT is not set\nCONFIG_NR_CPUS=1\nCONFIG_MODVERSIONS=y\nCONFIG_OTHER=y\n";
        let m = merge(base, &f);
        assert_eq!(
            m,
            "CONFIG_OTHER=y\n# --- images/kernel.config ---\nCONFIG_64BIT=y\nCONFIG_NR_CPUS=8\n# CONFIG_MODVERSIONS is not set\nCONFIG_CMDLINE=\"a # b\"\n"
        );
        assert!(verify(&m, &f).is_empty());
    }

    #[test]
    fn verify_names_options_that_did_not_stick() {
        let f = parse_fragment(FRAG).unwrap();
        // As if olddefconfig dropped 64BIT and re-enabled MODVERSIONS.
        let cfg = "CONFIG_NR_CPUS=8\nCONFIG_MODVERSIONS=y\nCONFIG_CMDLINE=\"a # b\"\n";
        let bad = verify(cfg, &f);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].0, "CONFIG_64BIT");
        assert!(bad[0].2.starts_with("absent"));
        assert_eq!(
            bad[1],
            ("CONFIG_MODVERSIONS".into(), "n".into(), "y".into())
        );
        // "not set" wanted and the option is absent entirely: fine.
        let f2 = parse_fragment("# CONFIG_SAMPLES is not set # r\n").unwrap();
        assert!(verify("", &f2).is_empty());
        let msg = mismatch_message(&bad, "images/kernel.config");
        assert!(msg.contains("CONFIG_MODVERSIONS: wanted n, got y"));
    }

    #[test]
    fn repo_fragment_is_valid_and_every_option_has_a_reason() {
        let p = util::repo_root().join("images/kernel.config");
        let text = std::fs::read_to_string(p).unwrap();
        let f = parse_fragment(&text).unwrap();
        assert!(f.iter().any(|o| o.name == "CONFIG_RUST" && o.value == "y"));
        for o in &f {
            let line = text.lines().nth(o.line - 1).unwrap();
            let body = line.trim_start_matches("# ");
            assert!(
                body.contains('#'),
                "images/kernel.config line {}: {} has no '# reason'",
                o.line,
                o.name
            );
        }
    }

    #[test]
    fn the_variants_are_the_default_and_one_per_fragment() {
        let repo = util::repo_root();
        assert_eq!(variants(&repo), ["preempt", "rt"]);
        let d = Variant::load(&repo, "preempt").unwrap();
        assert!(d.fragment.is_none());
        for bad in ["nope", "../kernel", "rt/../rt", ""] {
            let e = Variant::load(&repo, bad).unwrap_err().to_string();
            assert!(
                e.contains("unknown kernel variant") && e.contains("preempt, rt"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn the_rt_variant_adds_preempt_rt_on_top_of_the_common_fragment() {
        let repo = util::repo_root();
        let common =
            parse_fragment(&std::fs::read_to_string(repo.join("images/kernel.config")).unwrap())
                .unwrap();
        let rt = Variant::load(&repo, "rt").unwrap();
        let (path, text) = rt.fragment.unwrap();
        let v = parse_fragment(&text).unwrap();
        for o in &v {
            let line = text.lines().nth(o.line - 1).unwrap();
            assert!(
                line.trim_start_matches("# ").contains('#'),
                "{} line {}: {} has no '# reason'",
                path.display(),
                o.line,
                o.name
            );
        }
        let all = combine(&common, &v);
        let value = |n: &str| all.iter().find(|o| o.name == n).map(|o| o.value.as_str());
        assert_eq!(value("CONFIG_PREEMPT_RT"), Some("y"));
        assert_eq!(value("CONFIG_PREEMPT"), Some("y"));
        assert_eq!(value("CONFIG_RUST"), Some("y"));
        assert_eq!(all.len(), common.len() + v.len());
    }

    #[test]
    fn a_variant_option_replaces_the_common_one_and_comes_last() {
        let common = parse_fragment("CONFIG_A=y\nCONFIG_B=y\nCONFIG_C=1\n").unwrap();
        let v = parse_fragment("# CONFIG_B is not set\nCONFIG_D=y\n").unwrap();
        let all = combine(&common, &v);
        let got: Vec<(&str, &str)> = all
            .iter()
            .map(|o| (o.name.as_str(), o.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("CONFIG_A", "y"),
                ("CONFIG_C", "1"),
                ("CONFIG_B", "n"),
                ("CONFIG_D", "y")
            ]
        );
        let merged = merge("CONFIG_B=y\nCONFIG_E=y\n", &all);
        assert!(merged.contains("# CONFIG_B is not set"));
        assert!(!merged.contains("CONFIG_B=y"));
    }

    #[test]
    fn pin_parses() {
        let p = load_pin(&util::repo_root()).unwrap();
        assert_eq!(p.package, "linux-source-7.3");
        assert_eq!(p.sha256.len(), 64);
    }
}
