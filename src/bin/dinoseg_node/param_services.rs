//! The node's parameter services (`rcl_interfaces/srv/*Parameters*` under `<node>/`, what `ros2 param` calls),
//! over the validated [`Params`] rather than r2r's untyped table: get / list / get types; describe with the
//! descriptions, ranges and read-only flags of [`dinoseg::params::table`]; set (and set atomically) through
//! [`Params::set_live`], so a live key takes effect on the next frame ([`Core::update_live`]) and any other is
//! refused with the reason in the result. Changes are announced on `/parameter_events`.

use dinoseg::node::Core;
use dinoseg::params::{table, ParamValue, Params, Range};
use futures::executor::LocalSpawner;
use futures::task::LocalSpawnExt;
use futures::StreamExt;
use r2r::rcl_interfaces::msg::{
    FloatingPointRange, IntegerRange, Parameter, ParameterDescriptor, ParameterEvent, ParameterValue as Value,
    SetParametersResult,
};
use r2r::rcl_interfaces::srv::{
    DescribeParameters, GetParameterTypes, GetParameters, ListParameters, SetParameters, SetParametersAtomically,
};
use r2r::QosProfile;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// ROS's own parameters, outside our table: read at start-up only.
const ROS_KEYS: &[(&str, &str)] = &[("use_sim_time", "use /clock (simulated time) for the node's time")];

/// The parameters as the services see them.
pub struct ParamState {
    params: Params,
    /// Our keys (`params.to_flat()`) and ROS's own.
    values: BTreeMap<String, ParamValue>,
    ros_values: BTreeMap<String, ParamValue>,
}

impl ParamState {
    pub fn new(params: Params, ros_values: BTreeMap<String, ParamValue>) -> Self {
        let values = params.to_flat();
        ParamState { params, values, ros_values }
    }

    fn get(&self, name: &str) -> ParamValue {
        self.values.get(name).or_else(|| self.ros_values.get(name)).cloned().unwrap_or(ParamValue::NotSet)
    }

    fn names(&self) -> impl Iterator<Item = &String> {
        self.values.keys().chain(self.ros_values.keys())
    }

    /// `params` with `name` set, or the reason it is refused.
    fn try_set(&self, params: &Params, name: &str, value: &ParamValue) -> Result<Params, String> {
        if let Some(current) = self.ros_values.get(name) {
            return if current == value {
                Ok(params.clone())
            } else {
                Err(format!("{name} is read at start-up; restart the node to change it"))
            };
        }
        params.set_live(name, value)
    }

    fn commit(&mut self, params: Params) {
        self.values = params.to_flat();
        self.params = params;
    }
}

pub fn from_msg(v: &Value) -> ParamValue {
    match v.type_ {
        1 => ParamValue::Bool(v.bool_value),
        2 => ParamValue::Int(v.integer_value),
        3 => ParamValue::Double(v.double_value),
        4 => ParamValue::String(v.string_value.clone()),
        5 => ParamValue::IntArray(v.byte_array_value.iter().map(|&b| i64::from(b)).collect()),
        6 => ParamValue::BoolArray(v.bool_array_value.clone()),
        7 => ParamValue::IntArray(v.integer_array_value.clone()),
        8 => ParamValue::DoubleArray(v.double_array_value.clone()),
        9 => ParamValue::StringArray(v.string_array_value.clone()),
        _ => ParamValue::NotSet,
    }
}

fn to_msg(v: &ParamValue) -> Value {
    let mut m = Value { type_: type_of(v), ..Default::default() };
    match v {
        ParamValue::NotSet => {}
        ParamValue::Bool(b) => m.bool_value = *b,
        ParamValue::Int(i) => m.integer_value = *i,
        ParamValue::Double(d) => m.double_value = *d,
        ParamValue::String(s) => m.string_value = s.clone(),
        ParamValue::BoolArray(a) => m.bool_array_value = a.clone(),
        ParamValue::IntArray(a) => m.integer_array_value = a.clone(),
        ParamValue::DoubleArray(a) => m.double_array_value = a.clone(),
        ParamValue::StringArray(a) => m.string_array_value = a.clone(),
    }
    m
}

fn type_of(v: &ParamValue) -> u8 {
    match v {
        ParamValue::NotSet => 0,
        ParamValue::Bool(_) => 1,
        ParamValue::Int(_) => 2,
        ParamValue::Double(_) => 3,
        ParamValue::String(_) => 4,
        ParamValue::BoolArray(_) => 6,
        ParamValue::IntArray(_) => 7,
        ParamValue::DoubleArray(_) => 8,
        ParamValue::StringArray(_) => 9,
    }
}

fn describe(state: &ParamState, name: &str) -> ParameterDescriptor {
    let mut d = ParameterDescriptor { name: name.to_string(), type_: type_of(&state.get(name)), ..Default::default() };
    if let Some((_, text)) = ROS_KEYS.iter().find(|(k, _)| *k == name) {
        d.description = text.to_string();
        d.read_only = true;
        d.additional_constraints = "read at start-up".into();
        return d;
    }
    let Some(info) = table::describe(name) else {
        return d;
    };
    d.description = info.description.to_string();
    match info.range {
        Some(Range::Int { from, to, step }) => {
            d.integer_range = vec![IntegerRange { from_value: from, to_value: to, step }];
        }
        Some(Range::Double { from, to, step, .. }) => {
            d.floating_point_range = vec![FloatingPointRange { from_value: from, to_value: to, step }];
        }
        None => {}
    }
    d.read_only = !info.is_live();
    d.additional_constraints = info.constraints(name);
    d
}

/// `ros2 param list` rules (rclcpp's `list_parameters`): names under the prefixes, at most `depth` levels
/// below them (0: any), and the prefixes of the names returned.
fn list(state: &ParamState, prefixes: &[String], depth: u64) -> (Vec<String>, Vec<String>) {
    let deep_enough = |rest: &str| depth == 0 || (rest.matches('.').count() as u64) < depth;
    let mut names = Vec::new();
    let mut found_prefixes: Vec<String> = Vec::new();
    for name in state.names() {
        let all = prefixes.is_empty() && deep_enough(name);
        let under = prefixes.iter().any(|p| {
            name == p || name.strip_prefix(p.as_str()).and_then(|r| r.strip_prefix('.')).is_some_and(deep_enough)
        });
        if all || under {
            names.push(name.clone());
            if let Some((prefix, _)) = name.rsplit_once('.') {
                if !found_prefixes.iter().any(|p| p == prefix) {
                    found_prefixes.push(prefix.to_string());
                }
            }
        }
    }
    (names, found_prefixes)
}

/// One service `<node>/<service>`: each request is answered by `handle` with the state locked.
fn serve_one<T, F>(
    node: &mut r2r::Node,
    spawner: &LocalSpawner,
    service: &str,
    state: &Arc<Mutex<ParamState>>,
    logger: &str,
    mut handle: F,
) -> Result<(), String>
where
    T: r2r::WrappedServiceTypeSupport + 'static,
    F: FnMut(&mut ParamState, &T::Request) -> T::Response + 'static,
{
    let name = format!("{}/{service}", node.name().map_err(|e| e.to_string())?);
    let requests = node
        .create_service::<T>(&name, QosProfile::services_default())
        .map_err(|e| format!("parameter service {name}: {e}"))?;
    let (state, logger, service) = (state.clone(), logger.to_string(), service.to_string());
    spawner
        .spawn_local(requests.for_each(move |req| {
            let response = handle(&mut state.lock().unwrap_or_else(|p| p.into_inner()), &req.message);
            if let Err(e) = req.respond(response) {
                r2r::log_warn!(&logger, "{service}: cannot send the reply: {e}");
            }
            futures::future::ready(())
        }))
        .map_err(|e| format!("parameter service {name}: {e}"))
}

/// Announces changed parameters on `/parameter_events` and in the log.
struct Events {
    publisher: r2r::Publisher<ParameterEvent>,
    clock: Arc<Mutex<r2r::Clock>>,
    node: String,
    logger: String,
}

impl Events {
    fn announce(&self, changed: Vec<(String, ParamValue)>) {
        if changed.is_empty() {
            return;
        }
        for (k, v) in &changed {
            r2r::log_info!(&self.logger, "parameter {k} set to {v:?}: takes effect on the next frame");
        }
        let stamp = self
            .clock
            .lock()
            .ok()
            .and_then(|mut c| c.get_now().ok())
            .map(|d| r2r::builtin_interfaces::msg::Time { sec: d.as_secs() as i32, nanosec: d.subsec_nanos() })
            .unwrap_or_default();
        let changed_parameters =
            changed.iter().map(|(name, v)| Parameter { name: name.clone(), value: to_msg(v) }).collect();
        let event = ParameterEvent { stamp, node: self.node.clone(), changed_parameters, ..Default::default() };
        if let Err(e) = self.publisher.publish(&event) {
            r2r::log_warn!(&self.logger, "/parameter_events: {e}");
        }
    }
}

/// Sets `parameters` in order, each on the result of the previous; all or (`atomic`) none. The results per
/// parameter, and the changed values.
fn set_all(
    s: &mut ParamState,
    core: &Core,
    parameters: &[Parameter],
    atomic: bool,
) -> (Vec<SetParametersResult>, Vec<(String, ParamValue)>) {
    let before: Vec<ParamValue> = parameters.iter().map(|p| s.get(&p.name)).collect();
    let mut params = s.params.clone();
    let mut results = Vec::new();
    for p in parameters {
        match s.try_set(&params, &p.name, &from_msg(&p.value)) {
            Ok(new) => {
                params = new;
                results.push(SetParametersResult { successful: true, reason: String::new() });
            }
            Err(reason) => {
                if atomic {
                    let reason = format!("{}: {reason}", p.name);
                    return (vec![SetParametersResult { successful: false, reason }], Vec::new());
                }
                results.push(SetParametersResult { successful: false, reason });
            }
        }
    }
    s.commit(params);
    core.update_live(&s.params);
    let changed = parameters
        .iter()
        .zip(before)
        .filter(|(p, b)| *b != s.get(&p.name))
        .map(|(p, _)| (p.name.clone(), s.get(&p.name)))
        .collect();
    (results, changed)
}

/// Creates the services on `node` and spawns their handlers on `spawner`.
pub fn serve(
    node: &mut r2r::Node,
    spawner: &LocalSpawner,
    state: Arc<Mutex<ParamState>>,
    core: Arc<Core>,
    logger: String,
) -> Result<(), String> {
    let st = &state;
    let log = logger.as_str();
    serve_one::<GetParameters::Service, _>(node, spawner, "get_parameters", st, log, |s, req| {
        GetParameters::Response { values: req.names.iter().map(|n| to_msg(&s.get(n))).collect() }
    })?;
    serve_one::<GetParameterTypes::Service, _>(node, spawner, "get_parameter_types", st, log, |s, req| {
        GetParameterTypes::Response { types: req.names.iter().map(|n| type_of(&s.get(n))).collect() }
    })?;
    serve_one::<ListParameters::Service, _>(node, spawner, "list_parameters", st, log, |s, req| {
        let (names, prefixes) = list(s, &req.prefixes, req.depth);
        ListParameters::Response { result: r2r::rcl_interfaces::msg::ListParametersResult { names, prefixes } }
    })?;
    serve_one::<DescribeParameters::Service, _>(node, spawner, "describe_parameters", st, log, |s, req| {
        DescribeParameters::Response { descriptors: req.names.iter().map(|n| describe(s, n)).collect() }
    })?;
    let events = std::rc::Rc::new(Events {
        publisher: node
            .create_publisher::<ParameterEvent>("/parameter_events", QosProfile::parameter_events())
            .map_err(|e| format!("publisher /parameter_events: {e}"))?,
        clock: node.get_ros_clock(),
        node: node.fully_qualified_name().map_err(|e| e.to_string())?,
        logger: logger.clone(),
    });
    let (ev, c) = (events.clone(), core.clone());
    serve_one::<SetParameters::Service, _>(node, spawner, "set_parameters", st, log, move |s, req| {
        let (results, changed) = set_all(s, &c, &req.parameters, false);
        for (p, r) in req.parameters.iter().zip(&results) {
            if !r.successful {
                r2r::log_warn!(&ev.logger, "parameter {} not set: {}", p.name, r.reason);
            }
        }
        ev.announce(changed);
        SetParameters::Response { results }
    })?;
    serve_one::<SetParametersAtomically::Service, _>(
        node,
        spawner,
        "set_parameters_atomically",
        st,
        log,
        move |s, req| {
            let (mut results, changed) = set_all(s, &core, &req.parameters, true);
            events.announce(changed);
            let result = results
                .pop()
                .filter(|r| !r.successful)
                .unwrap_or(SetParametersResult { successful: true, reason: String::new() });
            SetParametersAtomically::Response { result }
        },
    )?;
    Ok(())
}
