// JSON is what the runner reads and writes everywhere: notebooks, kernel messages, reports.
global using System.Text.Json;
