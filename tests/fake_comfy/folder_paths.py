"""Test double of ComfyUI's folder_paths with the functions the pack calls (same names and semantics)."""
import os

base_path = os.environ["FAKE_COMFY_ROOT"]
models_dir = os.path.join(base_path, "models")
supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
folder_names_and_paths = {"vae": ([os.path.join(models_dir, "vae")], supported_pt_extensions)}


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    if folder_name in folder_names_and_paths:
        paths, _ = folder_names_and_paths[folder_name]
        if full_folder_path in paths:
            if is_default and paths[0] != full_folder_path:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]


def get_filename_list(folder_name):
    paths, extensions = folder_names_and_paths[folder_name]
    found = set()
    for root_dir in paths:
        for dirpath, _, files in os.walk(root_dir):
            for name in files:
                if not extensions or os.path.splitext(name)[1].lower() in extensions:
                    found.add(os.path.relpath(os.path.join(dirpath, name), root_dir).replace(os.sep, "/"))
    return sorted(found)


def get_full_path(folder_name, filename):
    for root_dir in folder_names_and_paths[folder_name][0]:
        path = os.path.join(root_dir, filename)
        if os.path.isfile(path) or os.path.isdir(path):
            return path
    return None


def get_output_directory():
    return os.path.join(base_path, "output")


def get_temp_directory():
    return os.path.join(base_path, "temp")


def get_input_directory():
    return os.path.join(base_path, "input")
