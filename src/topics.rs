//! Output topic names: for a camera topic `<ns>/<name>` (a trailing `/compressed` removed first), results are
//! published under `<ns>/dinoseg/` — `/camera/image_raw` and `/camera/image_raw/compressed` both give
//! `/camera/dinoseg/semantic`, `/camera/dinoseg/instances`, ...

/// Every output, with its topic suffix and ROS type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Output {
    Semantic,
    SemanticColor,
    Instances,
    InstanceIds,
    Detections,
    LabelInfo,
    Overlay,
}

impl Output {
    pub const ALL: [Output; 7] = [
        Output::Semantic,
        Output::SemanticColor,
        Output::Instances,
        Output::InstanceIds,
        Output::Detections,
        Output::LabelInfo,
        Output::Overlay,
    ];

    /// The last topic component (and the key in the parameters' `outputs` map).
    pub fn name(self) -> &'static str {
        match self {
            Output::Semantic => "semantic",
            Output::SemanticColor => "semantic_color",
            Output::Instances => "instances",
            Output::InstanceIds => "instance_ids",
            Output::Detections => "detections",
            Output::LabelInfo => "label_info",
            Output::Overlay => "overlay",
        }
    }

    /// The ROS 2 type name as bags record it.
    pub fn ros_type(self) -> &'static str {
        match self {
            Output::Semantic | Output::SemanticColor | Output::InstanceIds | Output::Overlay => "sensor_msgs/msg/Image",
            Output::Instances => "dinoseg_interfaces/msg/InstanceMaskArray",
            Output::Detections => "vision_msgs/msg/Detection2DArray",
            Output::LabelInfo => "vision_msgs/msg/LabelInfo",
        }
    }
}

/// One published stream of a camera: an output of the frame's main results (`head` None), or of one named head
/// other than the main one ([`crate::plan::HeadPlan::extra_semantic`]), published under
/// `<ns>/dinoseg/<head>/<output>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Stream {
    /// The head's name as a topic token ([`head_token`]); None for the main results.
    pub head: Option<String>,
    pub output: Output,
}

impl Stream {
    /// An output of the frame's main results.
    pub fn main(output: Output) -> Self {
        Stream { head: None, output }
    }

    /// An output of the head named `head` (the key under `heads`).
    pub fn of_head(head: &str, output: Output) -> Self {
        Stream { head: Some(head_token(head)), output }
    }

    /// `semantic`, `scene/semantic`: the topic's last components (and the name in traces and messages).
    pub fn name(&self) -> String {
        match &self.head {
            Some(h) => format!("{h}/{}", self.output.name()),
            None => self.output.name().to_string(),
        }
    }
}

/// A head name as a ROS topic token (`[A-Za-z_][A-Za-z0-9_]*`): other characters become `_`, and a name
/// starting with a digit (a list index) gets `head_` in front.
pub fn head_token(name: &str) -> String {
    let t: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if t.is_empty() || t.starts_with(|c: char| c.is_ascii_digit()) {
        format!("head_{t}")
    } else {
        t
    }
}

/// A set of [`Output`]s (which are published / written): a bitset, iterated in [`Output::ALL`] order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct OutputSet(u16);

// One bit per output.
const _: () = assert!(Output::ALL.len() <= 16);

impl OutputSet {
    /// No output.
    pub const EMPTY: OutputSet = OutputSet(0);

    fn bit(o: Output) -> u16 {
        1 << (o as u8)
    }

    pub fn contains(self, o: Output) -> bool {
        self.0 & Self::bit(o) != 0
    }

    pub fn insert(&mut self, o: Output) {
        self.0 |= Self::bit(o);
    }

    pub fn remove(&mut self, o: Output) {
        self.0 &= !Self::bit(o);
    }

    /// `self` with `o` in or out as `on` says.
    pub fn with(mut self, o: Output, on: bool) -> Self {
        if on {
            self.insert(o);
        } else {
            self.remove(o);
        }
        self
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The outputs in the set, in [`Output::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Output> {
        Output::ALL.into_iter().filter(move |o| self.contains(*o))
    }
}

impl FromIterator<Output> for OutputSet {
    fn from_iter<I: IntoIterator<Item = Output>>(iter: I) -> Self {
        let mut set = OutputSet::EMPTY;
        for o in iter {
            set.insert(o);
        }
        set
    }
}

impl std::fmt::Debug for OutputSet {
    /// `{semantic, overlay}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter().map(Output::name).map(Name)).finish()
    }
}

/// A name printed without quotes.
struct Name(&'static str);

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One remapping rule of the command line (`--ros-args -r [node:]from:=to`), as rcl takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    /// Applies only to the node of this name (`node:from:=to`); None for every node.
    pub node: Option<String>,
    pub from: String,
    pub to: String,
}

/// The ROS command-line arguments the node reads itself: remapping rules (`-r`/`--remap`) and parameter files
/// (`--params-file`), from every `--ros-args ... [--]` section, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RosArgs {
    pub remaps: Vec<Remap>,
    pub params_files: Vec<String>,
}

impl RosArgs {
    /// Reads the arguments as rcl does (`rcl_parse_arguments`): only inside `--ros-args` sections, which end at
    /// `--` or at the next `--ros-args`. Options that take a value skip it; malformed rules are left to rcl.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Self {
        let mut out = RosArgs::default();
        let mut in_ros = false;
        let mut it = args.iter().map(AsRef::as_ref);
        while let Some(a) = it.next() {
            match (in_ros, a) {
                (_, "--ros-args") => in_ros = true,
                (true, "--") => in_ros = false,
                (true, "-r" | "--remap") => {
                    if let Some(rule) = it.next().and_then(parse_remap) {
                        out.remaps.push(rule);
                    }
                }
                (true, "--params-file") => out.params_files.extend(it.next().map(String::from)),
                (
                    true,
                    "-p" | "--param" | "-e" | "--enclave" | "--log-level" | "--log-config-file" | "--log-file-name",
                ) => {
                    it.next();
                }
                _ => {}
            }
        }
        out
    }
}

/// `[node:]from:=to`; None for special rules (`__ns`, `__node`) and malformed ones.
fn parse_remap(rule: &str) -> Option<Remap> {
    let (lhs, to) = rule.split_once(":=")?;
    let (node, from) = match lhs.split_once(':') {
        _ if lhs.starts_with("rostopic://") || lhs.starts_with("rosservice://") => (None, lhs),
        Some((n, f)) if !n.contains('/') && !n.is_empty() => (Some(n.to_string()), f),
        _ => (None, lhs),
    };
    let from = from.strip_prefix("rostopic://").unwrap_or(from);
    if from.is_empty() || to.is_empty() || from.starts_with("__") || from.starts_with("rosservice://") {
        return None;
    }
    Some(Remap { node, from: from.to_string(), to: to.to_string() })
}

/// Topic names as rcl resolves them for one node (`rcl_node_resolve_name`): expansion against the node's name
/// and namespace, then the first matching remapping rule. The node subscribes with the name from its
/// parameters (rcl resolves it the same way) and derives its output topics from the resolved name, so a remapped
/// or namespaced camera gets its results next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    pub node_name: String,
    /// The node's namespace after `__ns` remapping (`/` at the root).
    pub namespace: String,
    pub remaps: Vec<Remap>,
}

impl Resolver {
    /// Names as a node `dinoseg` in the root namespace without remapping resolves them: what the offline runner
    /// uses (`camera/image_raw` is `/camera/image_raw` in a bag).
    pub fn root() -> Self {
        Resolver { node_name: "dinoseg".into(), namespace: "/".into(), remaps: Vec::new() }
    }

    /// The fully qualified name of `name`: `~` is the node's own name, relative names join the namespace,
    /// `{node}` and `{ns}`/`{namespace}` are substituted.
    pub fn expand(&self, name: &str) -> String {
        let ns = self.namespace.trim_end_matches('/');
        let fqn = format!("{ns}/{}", self.node_name);
        let name = name.replace("{node}", &self.node_name).replace("{namespace}", ns).replace("{ns}", ns);
        if name == "~" {
            fqn
        } else if let Some(rest) = name.strip_prefix("~/") {
            format!("{fqn}/{rest}")
        } else if name.starts_with('/') {
            name
        } else {
            format!("{ns}/{name}")
        }
    }

    /// The name rcl gives `topic`: expanded, then remapped by the first rule (for this node or for all) whose
    /// expanded `from` equals it.
    pub fn resolve(&self, topic: &str) -> String {
        let expanded = self.expand(topic);
        self.remaps
            .iter()
            .filter(|r| r.node.as_deref().is_none_or(|n| n == self.node_name))
            .find(|r| self.expand(&r.from) == expanded)
            .map_or(expanded, |r| self.expand(&r.to))
    }
}

/// The namespace results of `input_topic` are published in: `<ns>/dinoseg`.
pub fn output_namespace(input_topic: &str) -> String {
    let t = input_topic.trim_end_matches('/');
    let t = t.strip_suffix("/compressed").unwrap_or(t);
    let ns = match t.rfind('/') {
        Some(i) => &t[..i],
        None => "",
    };
    format!("{ns}/dinoseg")
}

/// The topic of `output` for `input_topic`.
pub fn output_topic(input_topic: &str, output: Output) -> String {
    format!("{}/{}", output_namespace(input_topic), output.name())
}

/// The topic of `stream` for `input_topic`: `<ns>/dinoseg/semantic`, `<ns>/dinoseg/<head>/semantic`.
pub fn stream_topic(input_topic: &str, stream: &Stream) -> String {
    format!("{}/{}", output_namespace(input_topic), stream.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_set_keeps_the_order_of_all() {
        let mut set: OutputSet = [Output::Overlay, Output::Semantic, Output::Overlay].into_iter().collect();
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Output::Semantic, Output::Overlay]);
        assert_eq!(format!("{set:?}"), "{semantic, overlay}");
        assert!(set.contains(Output::Overlay) && !set.contains(Output::Instances));
        set.remove(Output::Overlay);
        set.insert(Output::LabelInfo);
        assert_eq!((set.len(), format!("{set:?}")), (2, "{semantic, label_info}".to_string()));
        let all: OutputSet = Output::ALL.into_iter().collect();
        assert_eq!(all.iter().collect::<Vec<_>>(), Output::ALL.to_vec());
        assert!(OutputSet::EMPTY.is_empty() && OutputSet::default().is_empty());
        assert_eq!(OutputSet::EMPTY.with(Output::Detections, true).with(Output::Detections, false), OutputSet::EMPTY);
    }

    #[test]
    fn names() {
        assert_eq!(output_topic("/camera/image_raw", Output::Semantic), "/camera/dinoseg/semantic");
        assert_eq!(output_topic("/camera/image_raw/compressed", Output::Overlay), "/camera/dinoseg/overlay");
        assert_eq!(output_topic("/robot/front/color/image", Output::Instances), "/robot/front/color/dinoseg/instances");
        assert_eq!(output_topic("/image", Output::InstanceIds), "/dinoseg/instance_ids");
        assert_eq!(output_topic("image", Output::LabelInfo), "/dinoseg/label_info");
        assert_eq!(
            stream_topic("/cam/image_raw", &Stream::of_head("scene", Output::Semantic)),
            "/cam/dinoseg/scene/semantic"
        );
        assert_eq!(stream_topic("/cam/image_raw", &Stream::main(Output::Overlay)), "/cam/dinoseg/overlay");
        assert_eq!(head_token("0"), "head_0");
        assert_eq!(head_token("road-2"), "road_2");
        assert_eq!(head_token(""), "head_");
    }

    fn resolver(ns: &str, rules: &[&str]) -> Resolver {
        let mut args = vec!["node", "--ros-args"];
        for r in rules {
            args.extend(["-r", r]);
        }
        Resolver { node_name: "dinoseg".into(), namespace: ns.into(), remaps: RosArgs::parse(&args).remaps }
    }

    #[test]
    fn resolution_follows_namespace_and_remaps() {
        let plain = resolver("/", &[]);
        assert_eq!(plain.resolve("/camera/image_raw"), "/camera/image_raw");
        assert_eq!(plain.resolve("camera/image_raw"), "/camera/image_raw");
        assert_eq!(plain.resolve("~/debug"), "/dinoseg/debug");
        let ns = resolver("/robot1", &[]);
        assert_eq!(ns.resolve("camera/image_raw"), "/robot1/camera/image_raw");
        assert_eq!(ns.resolve("/camera/image_raw"), "/camera/image_raw");
        assert_eq!(ns.resolve("{node}/x"), "/robot1/dinoseg/x");
        let r = resolver("/", &["/camera/image_raw:=/front/color/image_raw"]);
        assert_eq!(r.resolve("/camera/image_raw"), "/front/color/image_raw");
        assert_eq!(r.resolve("camera/image_raw"), "/front/color/image_raw");
        assert_eq!(output_topic(&r.resolve("/camera/image_raw"), Output::Semantic), "/front/color/dinoseg/semantic");
        // Relative rules expand in the node's namespace; the first matching rule wins; other nodes' rules are
        // skipped; special rules are not topic rules.
        let r = resolver(
            "/robot1",
            &["other:camera/image_raw:=/nope", "__ns:=/x", "camera/image_raw:=front/image", "camera/image_raw:=/late"],
        );
        assert_eq!(r.resolve("camera/image_raw"), "/robot1/front/image");
        let r = resolver("/", &["dinoseg:/a:=/b", "rostopic:///c:=/d"]);
        assert_eq!((r.resolve("/a"), r.resolve("/c")), ("/b".to_string(), "/d".to_string()));
    }

    #[test]
    fn hostile_arguments_never_panic() {
        // Every split of odd rule texts, as parse and resolve see them from a command line.
        let odd = [
            "",
            ":",
            ":=",
            "a:=",
            ":=b",
            "::=:=",
            "~",
            "~/",
            "{node}",
            "{ns}{node}",
            "/",
            "//",
            "a:b:c:=d",
            "rostopic://",
            "rosservice://x:=y",
            "__ns:=",
            "é:=ü",
            "\u{0}",
            "-r",
            "--ros-args",
            "--",
        ];
        for a in odd {
            for b in odd {
                let args = ["n", "--ros-args", "-r", a, "--remap", b, "--params-file", a, b];
                let r =
                    Resolver { node_name: "dinoseg".into(), namespace: b.into(), remaps: RosArgs::parse(&args).remaps };
                let _ = output_topic(&r.resolve(a), Output::Semantic);
            }
        }
    }

    #[test]
    fn ros_args_sections() {
        let a = RosArgs::parse(&[
            "node",
            "-r",
            "/x:=/y",
            "--ros-args",
            "-p",
            "a:=1",
            "--params-file",
            "f.yaml",
            "-r",
            "/a:=/b",
            "--",
            "--params-file",
            "ignored.yaml",
            "--ros-args",
            "--remap",
            "/c:=/d",
            "--params-file",
        ]);
        assert_eq!(a.params_files, vec!["f.yaml".to_string()]);
        assert_eq!(a.remaps.iter().map(|r| r.from.as_str()).collect::<Vec<_>>(), vec!["/a", "/c"]);
    }
}
