// What every workload file opens: JSON parameters and TorchSharp.
global using System.Text.Json.Nodes;
global using TorchSharp;
global using static TorchSharp.torch;
