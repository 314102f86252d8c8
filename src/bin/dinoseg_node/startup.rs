//! Start-up before rcl: params files checked by rcl's own YAML parser (r2r 0.9 panics inside `rcl_init` when rcl
//! cannot parse one), the Fast DDS settings for camera-sized messages, and the ROS context created without a
//! panic reaching the user.

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};

/// Checks every `--params-file` the way `rcl_init` will read it: a regular readable file of bounded size
/// ([`dinoseg::files::caps::PARAMS`]), within the YAML bounds of [`dinoseg::params::yaml`], that rcl's YAML
/// parser (`rcl_parse_yaml_file`) accepts. All problems are reported, each naming its file.
pub fn check_params_files(files: &[String]) -> Result<(), String> {
    let problems: Vec<String> = files.iter().filter_map(|f| check_params_file(Path::new(f)).err()).collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid --params-file:\n  {}", problems.join("\n  ")))
    }
}

fn check_params_file(path: &Path) -> Result<(), String> {
    let shown = path.display();
    // A FIFO or device is refused by type before it is opened (opening a FIFO blocks); the size is capped.
    let text = dinoseg::files::read_text_capped(path, dinoseg::files::caps::PARAMS, "params file")
        .map_err(|e| e.to_string())?;
    let layout = dinoseg::params::ros_layout_problems(&text);
    if !layout.is_empty() {
        return Err(format!("{shown}: {}", layout.join(&format!("\n  {shown}: "))));
    }
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| format!("{shown}: NUL in path"))?;
    rcl_parse(&c_path).map_err(|e| format!("{shown}: rcl cannot parse it: {e}"))
}

/// rcl's verdict on a params file, with its error text.
fn rcl_parse(path: &CStr) -> Result<(), String> {
    use r2r_rcl::*;
    // SAFETY: plain rcl C calls on a path we own; the params struct is created and finalised here.
    unsafe {
        let params = rcl_yaml_node_struct_init(rcutils_get_default_allocator());
        if params.is_null() {
            return Err("rcl could not allocate its parameter table".into());
        }
        let ok = rcl_parse_yaml_file(path.as_ptr(), params);
        let error = if ok {
            None
        } else {
            let e = rcutils_get_error_string();
            let raw = CStr::from_ptr(e.str_.as_ptr()).to_string_lossy().into_owned();
            // "<message>\n, at /project/src/parse.c:841": the message, on one line.
            let text = raw.split(", at /").next().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ");
            rcutils_reset_error();
            Some(text)
        };
        rcl_yaml_node_struct_fini(params);
        match error {
            None => Ok(()),
            Some(e) if e.is_empty() => Err("rcl gave no reason".into()),
            Some(e) => Err(e),
        }
    }
}

/// Creates the ROS context (`rcl_init`) and turns r2r's panic on a failure into an error (quietly: the panic hook
/// installed by `main` ([`dinoseg::error::install_quiet_panic_hook`]) prints nothing inside `catch_quiet`).
pub fn create_context() -> Result<r2r::Context, String> {
    match dinoseg::error::catch_quiet(r2r::Context::create) {
        Ok(Ok(ctx)) => Ok(ctx),
        Ok(Err(e)) => Err(format!("ROS context: {e}")),
        Err(p) => Err(format!("rcl_init failed (check the --ros-args): {}", p.text())),
    }
}

/// The Fast DDS profile shipped in `config/fastdds.xml` (see the file for the why).
const FASTDDS_PROFILE: &str = include_str!("../../../config/fastdds.xml");
/// `DINOSEG_FASTDDS_PROFILE`: unset or `shipped` applies [`FASTDDS_PROFILE`]; `off` keeps Fast DDS's defaults;
/// any other value is the path of an XML profile to use.
const PROFILE_SWITCH: &str = "DINOSEG_FASTDDS_PROFILE";
const FASTDDS_ENV: [&str; 2] = ["FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE"];

/// Which Fast DDS settings the node runs with, set in the environment before `rcl_init` reads it. Returns the
/// line to log. The user's own `FASTRTPS_DEFAULT_PROFILES_FILE` always wins; other middlewares are left alone.
pub fn apply_middleware_profile() -> String {
    let rmw = std::env::var("RMW_IMPLEMENTATION").unwrap_or_default();
    if !rmw.is_empty() && !rmw.starts_with("rmw_fastrtps") {
        return format!("middleware {rmw}: its own configuration");
    }
    if let Some((var, file)) = FASTDDS_ENV.iter().find_map(|v| std::env::var(v).ok().map(|f| (*v, f))) {
        return format!("Fast DDS profile from {var}: {file}");
    }
    let choice = std::env::var(PROFILE_SWITCH).unwrap_or_default();
    let file = match choice.as_str() {
        "off" | "default" => return format!("Fast DDS default transports ({PROFILE_SWITCH}={choice})"),
        "" | "shipped" => match write_profile() {
            Ok(p) => p,
            Err(e) => return format!("Fast DDS default transports: cannot write the shipped profile: {e}"),
        },
        path => PathBuf::from(path),
    };
    for var in FASTDDS_ENV {
        // Single-threaded here: called before rcl or any thread of ours starts.
        std::env::set_var(var, &file);
    }
    format!("Fast DDS profile {} (large-message settings; {PROFILE_SWITCH}=off for the defaults)", file.display())
}

/// Writes the shipped profile once per content (a hash in the name), atomically, in the runtime directory.
fn write_profile() -> std::io::Result<PathBuf> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|d| d.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let hash = FASTDDS_PROFILE
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let path = dir.join(format!("dinoseg-fastdds-{hash:016x}.xml"));
    if std::fs::read_to_string(&path).is_ok_and(|t| t == FASTDDS_PROFILE) {
        return Ok(path);
    }
    let tmp = dir.join(format!("dinoseg-fastdds-{hash:016x}.{}.tmp", std::process::id()));
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        f.write_all(FASTDDS_PROFILE.as_bytes())?;
    }
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
