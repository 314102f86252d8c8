//! `dinoseg`: the command-line front end of the dinoseg core (no ROS needed).

use clap::{Parser, Subcommand};
use dinoseg::checkpoint;
use dinoseg::device::{parse_device, parse_precision};
use dinoseg::model::ForwardOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use tch::{Device, Kind, Tensor};

#[derive(Parser)]
#[command(name = "dinoseg", version, about = "DINOv3 segmentation on libtorch, for ROS 2 robots and offline runs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every DINOv3 backbone of the catalog.
    Backbones {
        /// Print this variant's transformers config.json instead.
        #[arg(long, value_name = "VARIANT")]
        config: Option<String>,
        /// Write a transformers directory with random weights of VARIANT to DIR (benchmarks, smoke tests).
        #[arg(long, num_args = 2, value_names = ["VARIANT", "DIR"])]
        random_weights: Option<Vec<String>>,
    },
    /// Run a model on `pixel_values` from a safetensors file and write its raw outputs under transformers' names.
    Forward {
        /// transformers directory, .safetensors file (with --variant), official .pth, or hub id.
        #[arg(long)]
        model: String,
        /// Catalog variant for a bare .safetensors file in transformers names.
        #[arg(long)]
        variant: Option<String>,
        /// safetensors file holding `pixel_values` [B,3,H,W] float32.
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value = "cpu")]
        device: String,
        /// fp32, fp16 or bf16 (outputs are written as float32).
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// DINOv3-Mask2former adapter checkpoints: the 0-based ViT blocks the adapter taps (e.g. 2,5,8,11);
        /// default: the known variant file's.
        #[arg(long, value_delimiter = ',', value_parser = flags::int_i64(0, 1023))]
        layers: Option<Vec<i64>>,
        /// DINOv3-Mask2former adapter checkpoints: the ViT's attention heads, for sizes outside the catalog,
        /// 1 to 1024.
        #[arg(long, value_parser = flags::int_i64(1, 1024))]
        num_heads: Option<i64>,
    },
    /// Convert an official DINOv3 .pth state dict, or an EoMT authors' checkpoint (with --base), into a
    /// transformers directory.
    Convert {
        src: PathBuf,
        out_dir: PathBuf,
        /// Attention heads, for sizes outside the catalog (the weights cannot tell the head count), 1 to 1024.
        #[arg(long, value_parser = flags::int_i64(1, 1024))]
        num_heads: Option<i64>,
        /// EoMT checkpoints: the DINOv3 base whose weights the backbone differences are added to (a
        /// transformers directory or hub id such as facebook/dinov3-vitl16-pretrain-lvd1689m).
        #[arg(long)]
        base: Option<String>,
        /// EoMT checkpoints: the training input size recorded in config.json, 1 to 16384.
        #[arg(long, default_value_t = 640, value_parser = flags::int_i64(1, 16384))]
        image_size: i64,
        /// EoMT checkpoints: class names for config.json's id2label (a labels file: one class per line,
        /// `[id:] name [[thing]|[stuff]]`); default class_<i>.
        #[arg(long)]
        labels: Option<PathBuf>,
    },
    /// Random-weight catalog backbone on a generated camera frame: feature shapes and timings.
    Demo(demo::DemoArgs),
    /// Run the pipeline over an image file, folder, glob or ROS 2 bag (MCAP); write label images, colour
    /// images, overlays and instances to a folder, or the node's topics to an MCAP bag (`--output x.mcap`).
    /// Exit status: 0 done, 1 failed, 2 input damaged or frames failed in the model (the rest processed),
    /// 128 + signal when interrupted (the outputs hold the frames done).
    Run {
        #[arg(long)]
        params: PathBuf,
        #[arg(long)]
        input: String,
        #[arg(long)]
        output: PathBuf,
        /// Process every sensor_msgs/Image and CompressedImage topic of the bag, not only the parameters' topics.
        #[arg(long)]
        all_topics: bool,
        /// Stop after this many frames (at least 1).
        #[arg(long, value_parser = flags::count_u64(1, u64::MAX))]
        max_frames: Option<u64>,
        /// Also write the statistics (frames per topic, per-stage latency medians, damage, exit code) to this JSON
        /// file, on every exit path.
        #[arg(long)]
        stats_json: Option<PathBuf>,
        /// Also write the results as files (label PNGs, colour PNGs, overlays, instances JSON) into this folder,
        /// from the same pass (useful with an .mcap --output).
        #[arg(long)]
        files: Option<PathBuf>,
    },
    /// Segmentation metrics from standard files, as the reference implementations compute them: semantic label
    /// PNGs (mIoU, pixel accuracy; mmseg) or COCO panoptic sets (PQ, SQ, RQ; panopticapi). The mode follows
    /// from the flags given; the metrics are printed and written to --json.
    Eval(eval::EvalArgs),
    /// Validate a parameters file: every bad key is named; non-zero exit if any.
    CheckParams { file: PathBuf },
    /// End-to-end latency of the node's core (message in, messages out, in-memory transport) on the models of a
    /// params file: one frame at a time, or cameras streaming at a rate.
    BenchCore(bench_core::BenchCoreArgs),
    /// Train a DINOv3 linear head (BatchNorm + 1x1 conv, the node's head format) on a frozen encoder.
    ///
    /// Labels: a folder of label PNGs paired with the images by file stem (8/16-bit grey class ids or palette
    /// indices, 255 ignored, the image's size), or a COCO panoptic JSON (its categories are the classes, in the
    /// order listed; VOID and crowd ignored). Features are computed once (frozen encoder, the library's
    /// preprocessing) and cached on --device, except with --scale-jitter, which runs the encoder on every training
    /// image every epoch.
    ///
    /// Defaults follow the DINOv3 linear segmentation protocol (facebookresearch/dinov3,
    /// dinov3/eval/segmentation/configs/config-ade20k-linear-training.yaml): AdamW lr 1e-3, betas (0.9, 0.999),
    /// weight decay 1e-3, batch 16, layers `last`, linear warm-up over 1500/40000 of the steps then cosine decay to
    /// 0, cross-entropy ignoring 255 on logits bilinearly up-sampled to the labels, horizontal flips (--flip),
    /// random resize (--scale-jitter 0.5,2). The head file loads in `dinoseg run` and the node unchanged; class
    /// names go to its `dinoseg.classes` metadata.
    TrainHead(Box<train_head::TrainHeadArgs>),
    /// Benchmark worker: times forward passes on request (driven by bench/*.py).
    #[command(hide = true)]
    BenchWorker(bench::BenchArgs),
}

mod bench;
mod bench_core;
mod demo;
mod eval;
mod flags;
mod train_head;

fn main() -> ExitCode {
    dinoseg::error::install_quiet_panic_hook();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Backbones { config, random_weights } => backbones(config, random_weights),
        Command::Forward { model, variant, input, output, device, precision, layers, num_heads } => {
            let m2f = checkpoint::Mask2FormerOptions { layers, num_heads };
            forward(&model, variant.as_deref(), &m2f, &input, &output, &device, &precision)
        }
        Command::Convert { src, out_dir, num_heads, base, image_size, labels } => match base {
            Some(base) => labels
                .map(|l| dinoseg::postprocess::Labels::from_file(&l).map(|l| l.names().to_vec()))
                .transpose()
                .map_err(dinoseg::Error::from)
                .and_then(|names| checkpoint::eomt_delta::convert_eomt_delta(&src, &base, &out_dir, image_size, names))
                .map(|c| {
                    println!(
                        "wrote EomtDinov3ForUniversalSegmentation (eomt_dinov3, {} queries, {} classes) to {}",
                        c.num_queries,
                        c.num_labels(),
                        out_dir.display()
                    );
                }),
            None => checkpoint::official::convert_official_file(&src, &out_dir, num_heads).map(|config| {
                println!("wrote {} ({}) to {}", config.architecture(), config.model_type(), out_dir.display());
            }),
        },
        Command::Demo(args) => demo::run(&args),
        Command::BenchWorker(args) => bench::run(&args),
        Command::BenchCore(args) => bench_core::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::TrainHead(args) => train_head::run(&args),
        Command::Run { params, input, output, all_topics, max_frames, stats_json, files } => {
            let opts = dinoseg::runner::RunOptions { params, input, output, all_topics, max_frames, files, stats_json };
            return run(&opts);
        }
        Command::CheckParams { file } => match dinoseg::params::check_file(&file) {
            Ok(p) => {
                println!("{}: ok ({} head(s), outputs: {:?})", file.display(), p.heads.len(), p.outputs());
                Ok(())
            }
            Err(errors) => Err(dinoseg::Error::Input(format!("{}:\n{errors}", file.display()))),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `dinoseg run`: exit 0 done, 1 failed, 2 input damaged or frames failed in the model (the rest processed),
/// 128 + signal interrupted (SIGINT, SIGTERM: the outputs hold the frames done). Statistics on every path.
fn run(opts: &dinoseg::runner::RunOptions) -> ExitCode {
    if let Err(e) = dinoseg::runner::signals::catch_interrupts() {
        eprintln!("warning: cannot install the SIGINT/SIGTERM handler: {e}");
    }
    let stats = dinoseg::runner::run(opts);
    if stats.error.is_none() || !stats.topics.is_empty() {
        println!("{}", stats.report());
    }
    if let Some(e) = &stats.error {
        eprintln!("error: {e}");
    }
    ExitCode::from(stats.exit_code())
}

fn backbones(config: Option<String>, random_weights: Option<Vec<String>>) -> dinoseg::Result<()> {
    let variant =
        |name: &str| dinoseg::catalog::find(name).ok_or_else(|| dinoseg::Error::UnknownVariant(name.to_string()));
    if let Some(name) = config {
        println!("{}", variant(&name)?.config().to_json());
    } else if let Some([name, dir]) = random_weights.as_deref() {
        let config = variant(name)?.config();
        let mut model = dinoseg::model::LoadedBackbone::build(&config, Device::Cpu)?;
        model.randomize(0);
        checkpoint::write_transformers_dir(std::path::Path::new(dir), &config, &model.named_tensors())?;
    } else {
        print!("{}", dinoseg::catalog::table());
    }
    Ok(())
}

fn forward(
    model: &str,
    variant: Option<&str>,
    m2f: &checkpoint::Mask2FormerOptions,
    input: &std::path::Path,
    output: &std::path::Path,
    device: &str,
    precision: &str,
) -> dinoseg::Result<()> {
    let device: Device = parse_device(device)?;
    let kind: Kind = parse_precision(precision)?;
    let (model, _norm) = if *m2f != checkpoint::Mask2FormerOptions::default() {
        let (m, norm) = checkpoint::load_mask2former(model, m2f, device, kind)?;
        (checkpoint::LoadedModel::Mask2Former(Box::new(m)), norm)
    } else {
        checkpoint::load_model(model, variant, device, kind)?
    };
    let inputs = checkpoint::read_safetensors(input)?;
    let pixels = inputs
        .into_iter()
        .find(|(n, _)| n == "pixel_values")
        .map(|(_, t)| t.to_device(device))
        .ok_or_else(|| dinoseg::Error::checkpoint_missing(input, "pixel_values"))?;
    let cpu = |t: &Tensor| t.to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
    let named = match model {
        checkpoint::LoadedModel::Backbone(model) => {
            let opts = ForwardOptions { hidden_states: true, dense_layers: None };
            let (out, _padding) = model.backbone.forward(&pixels, &opts)?;
            let mut named = vec![("last_hidden_state".to_string(), cpu(&out.last_hidden_state))];
            for (i, h) in out.hidden_states.iter().enumerate() {
                named.push((format!("hidden_states.{i}"), cpu(h)));
            }
            named
        }
        checkpoint::LoadedModel::Eomt(model) => {
            let (out, _padding) = model.model.forward(&pixels)?;
            vec![
                ("class_queries_logits".to_string(), cpu(&out.class_queries_logits)),
                ("masks_queries_logits".to_string(), cpu(&out.masks_queries_logits)),
            ]
        }
        checkpoint::LoadedModel::Mask2Former(model) => {
            let (out, _padding) = model.model.forward(&pixels)?;
            let (maps, _) = model.model.encoder_features(&pixels)?;
            let mut named = vec![
                ("class_queries_logits".to_string(), cpu(&out.class_queries_logits)),
                ("masks_queries_logits".to_string(), cpu(&out.masks_queries_logits)),
            ];
            for (i, m) in maps.iter().enumerate() {
                named.push((format!("encoder_hidden_states.{i}"), cpu(m)));
            }
            named
        }
    };
    Tensor::write_safetensors(&named, output).map_err(|e| dinoseg::Error::checkpoint_write(output, e))
}
