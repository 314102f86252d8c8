//! YAML parameters (ROS 2 params-file layout) shared by the node and the offline runner, and their validation.
