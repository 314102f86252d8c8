"""dinoseg node, optionally with rviz2.

    ros2 launch dinoseg dinoseg.launch.py image_topic:=/front/color/image_raw rviz:=true

The node subscribes to the topics of its `input.topics` parameter (default `camera/image_raw`, relative: it
follows `namespace`); for one camera, `image_topic` remaps that default onto yours. Outputs go next to the
resolved camera topic (`image_topic:=/front/color/image_raw` gives `/front/color/dinoseg/...`). For several
cameras, list them in the params file instead. The node applies its Fast DDS settings for camera-sized messages
(`config/fastdds.xml`) unless FASTRTPS_DEFAULT_PROFILES_FILE is set.
Relative paths in the params file resolve against the file's directory (the node reads `--params-file`).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare('dinoseg')
    params_file = LaunchConfiguration('params_file')
    use_sim_time = LaunchConfiguration('use_sim_time')

    return LaunchDescription([
        DeclareLaunchArgument(
            'params_file', default_value=PathJoinSubstitution([share, 'config', 'demo.yaml']),
            description='dinoseg parameters (YAML with ros__parameters)'),
        DeclareLaunchArgument('namespace', default_value='', description='namespace of the node'),
        DeclareLaunchArgument(
            'image_topic', default_value='camera/image_raw',
            description='camera topic remapped onto camera/image_raw (one-camera setups); outputs go next to it'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock'),
        DeclareLaunchArgument('rviz', default_value='false', description='also start rviz2'),
        Node(
            package='dinoseg',
            executable='dinoseg_node',
            name='dinoseg',
            namespace=LaunchConfiguration('namespace'),
            parameters=[params_file, {'use_sim_time': use_sim_time}],
            remappings=[('camera/image_raw', LaunchConfiguration('image_topic'))],
            output='screen',
            emulate_tty=True,
        ),
        Node(
            package='rviz2',
            executable='rviz2',
            name='rviz2',
            arguments=['-d', PathJoinSubstitution([share, 'rviz', 'dinoseg.rviz'])],
            parameters=[{'use_sim_time': use_sim_time}],
            condition=IfCondition(LaunchConfiguration('rviz')),
            output='screen',
        ),
    ])
