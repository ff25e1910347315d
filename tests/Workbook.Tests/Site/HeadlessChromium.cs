using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Workbook.Tests.Site;

/// <summary>
/// Debian's headless Chromium driven over the DevTools protocol, with the network cut off (every host name resolves
/// to nothing, background services off). Every request a page makes is recorded, so a test can assert that a page
/// loaded nothing but its own files.
/// </summary>
sealed class HeadlessChromium : IAsyncDisposable
{
    readonly Process _process;
    readonly string _profile;
    readonly ClientWebSocket _socket = new();
    readonly ConcurrentDictionary<int, TaskCompletionSource<JsonObject>> _pending = new();
    readonly CancellationTokenSource _stop = new();
    readonly SemaphoreSlim _send = new(1, 1);
    Task _receive = Task.CompletedTask;
    int _nextId;
    string? _session;

    /// <summary>Called with every protocol event (method, params) of the attached page.</summary>
    public event Action<string, JsonObject>? Event;

    HeadlessChromium(Process process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    /// <summary>The browser executable: $CHROMIUM, else chromium, chromium-browser or google-chrome on PATH.</summary>
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable("CHROMIUM") is { Length: > 0 } env && File.Exists(env)) return env;
        var path = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator);
        foreach (var name in new[] { "chromium", "chromium-browser", "google-chrome" })
            foreach (var dir in path)
                if (dir.Length > 0 && File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }

    /// <summary>The browser, or a failed assertion that says how to install it.</summary>
    public static string Require() => Find() ?? throw new Xunit.Sdk.XunitException(
        "Headless Chromium is needed to check the HTML site and was not found (looked for $CHROMIUM, chromium, chromium-browser, google-chrome on PATH). " +
        "Install it: `apt-get install -y chromium` (Debian), or set CHROMIUM to the browser's path.");

    /// <summary>Starts the browser and opens one blank tab with network, page and runtime events on.</summary>
    public static async Task<HeadlessChromium> StartAsync(TimeSpan? timeout = null)
    {
        var exe = Require();
        var profile = Path.Combine(Path.GetTempPath(), "wb-chromium-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(profile);
        var psi = new ProcessStartInfo(exe) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[]
        {
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-extensions", "--disable-default-apps", "--no-first-run",
            "--no-default-browser-check", "--metrics-recording-only", "--mute-audio", "--hide-scrollbars",
            // Network off: every host name fails to resolve, and no proxy is tried.
            "--host-resolver-rules=MAP * ~NOTFOUND", "--no-proxy-server",
            // Pages under file:// may read their neighbours (the plotly.js and search scripts are plain <script src>, but be safe).
            "--allow-file-access-from-files",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1", $"--user-data-dir={profile}",
            "--window-size=1280,1800", "about:blank",
        }) psi.ArgumentList.Add(a);
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {exe}");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var browser = new HeadlessChromium(process, profile);
        try
        {
            var portFile = Path.Combine(profile, "DevToolsActivePort");
            var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
            string[]? lines = null;
            while (DateTime.UtcNow < deadline)
            {
                if (process.HasExited) throw new InvalidOperationException($"{exe} exited with code {process.ExitCode} before opening its DevTools port.");
                if (File.Exists(portFile))
                {
                    lines = (await File.ReadAllLinesAsync(portFile)).Where(l => l.Length > 0).ToArray();
                    if (lines.Length >= 2) break;
                }
                await Task.Delay(100);
            }
            if (lines is not { Length: >= 2 }) throw new TimeoutException($"{exe} did not open its DevTools port within {timeout ?? TimeSpan.FromSeconds(60)}.");
            await browser._socket.ConnectAsync(new Uri($"ws://127.0.0.1:{lines[0]}{lines[1]}"), CancellationToken.None);
            browser._receive = Task.Run(browser.ReceiveLoop);
            var target = await browser.SendAsync("Target.createTarget", new JsonObject { ["url"] = "about:blank" }, session: false);
            var attached = await browser.SendAsync("Target.attachToTarget", new JsonObject { ["targetId"] = target["targetId"]!.GetValue<string>(), ["flatten"] = true }, session: false);
            browser._session = attached["sessionId"]!.GetValue<string>();
            await browser.SendAsync("Network.enable", new JsonObject());
            await browser.SendAsync("Network.setCacheDisabled", new JsonObject { ["cacheDisabled"] = true });
            await browser.SendAsync("Page.enable", new JsonObject());
            await browser.SendAsync("Runtime.enable", new JsonObject());
            await browser.SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject { ["width"] = 1280, ["height"] = 1800, ["deviceScaleFactor"] = 1, ["mobile"] = false });
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    /// <summary>Sends a command to the page (or to the browser) and waits for its result.</summary>
    public async Task<JsonObject> SendAsync(string method, JsonObject parameters, bool session = true, TimeSpan? timeout = null)
    {
        int id = Interlocked.Increment(ref _nextId);
        var message = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters };
        if (session && _session is not null) message["sessionId"] = _session;
        var tcs = new TaskCompletionSource<JsonObject>(TaskCreationOptions.RunContinuationsAsynchronously);
        _pending[id] = tcs;
        var bytes = Encoding.UTF8.GetBytes(message.ToJsonString());
        await _send.WaitAsync();
        try { await _socket.SendAsync(bytes, WebSocketMessageType.Text, true, CancellationToken.None); }
        finally { _send.Release(); }
        var limit = timeout ?? TimeSpan.FromSeconds(60);
        var done = await Task.WhenAny(tcs.Task, Task.Delay(limit));
        if (done != tcs.Task) { _pending.TryRemove(id, out _); throw new TimeoutException($"DevTools command {method} got no answer within {limit}."); }
        return await tcs.Task;
    }

    /// <summary>Evaluates a JavaScript expression in the page (awaiting a promise) and returns its value as a string.</summary>
    public async Task<string> EvaluateAsync(string expression, TimeSpan? timeout = null)
    {
        var r = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["awaitPromise"] = true, ["returnByValue"] = true }, timeout: timeout);
        if (r["exceptionDetails"] is JsonObject ex) throw new InvalidOperationException($"script failed in the page: {ex.ToJsonString()}");
        return r["result"]?["value"]?.ToString() ?? "";
    }

    /// <summary>Opens a URL and waits for its load event.</summary>
    public async Task NavigateAsync(string url, TimeSpan? timeout = null)
    {
        var loaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnEvent(string method, JsonObject _) { if (method == "Page.loadEventFired") loaded.TrySetResult(); }
        Event += OnEvent;
        try
        {
            var r = await SendAsync("Page.navigate", new JsonObject { ["url"] = url });
            if (r["errorText"] is { } err) throw new InvalidOperationException($"navigating to {url} failed: {err}");
            var limit = timeout ?? TimeSpan.FromSeconds(60);
            if (await Task.WhenAny(loaded.Task, Task.Delay(limit)) != loaded.Task) throw new TimeoutException($"{url} did not finish loading within {limit}.");
        }
        finally { Event -= OnEvent; }
    }

    /// <summary>Saves a PNG of the whole page (for looking at it).</summary>
    public async Task ScreenshotAsync(string path)
    {
        var r = await SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png", ["captureBeyondViewport"] = true });
        await File.WriteAllBytesAsync(path, Convert.FromBase64String(r["data"]!.GetValue<string>()));
    }

    async Task ReceiveLoop()
    {
        var buffer = new byte[1 << 16];
        var message = new MemoryStream();
        try
        {
            while (!_stop.IsCancellationRequested && _socket.State == WebSocketState.Open)
            {
                var result = await _socket.ReceiveAsync(buffer, _stop.Token);
                if (result.MessageType == WebSocketMessageType.Close) break;
                message.Write(buffer, 0, result.Count);
                if (!result.EndOfMessage) continue;
                var node = JsonNode.Parse(Encoding.UTF8.GetString(message.GetBuffer(), 0, (int)message.Length)) as JsonObject;
                message.SetLength(0);
                if (node is null) continue;
                if (node["id"] is { } idNode && _pending.TryRemove(idNode.GetValue<int>(), out var tcs))
                {
                    if (node["error"] is JsonObject error) tcs.TrySetException(new InvalidOperationException($"DevTools error: {error.ToJsonString()}"));
                    else tcs.TrySetResult(node["result"] as JsonObject ?? new JsonObject());
                }
                else if (node["method"] is { } method)
                    Event?.Invoke(method.GetValue<string>(), node["params"] as JsonObject ?? new JsonObject());
            }
        }
        catch (OperationCanceledException) { }
        catch (WebSocketException) { }
        foreach (var p in _pending.Values) p.TrySetException(new InvalidOperationException("the browser connection closed"));
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                try { await SendAsync("Browser.close", new JsonObject(), session: false, timeout: TimeSpan.FromSeconds(5)); }
                catch (Exception e) when (e is TimeoutException or InvalidOperationException or WebSocketException) { }
            }
            _stop.Cancel();
            try { await _receive.WaitAsync(TimeSpan.FromSeconds(5)); } catch (TimeoutException) { }
        }
        finally
        {
            if (!_process.WaitForExit(5000)) { try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { } }
            _process.Dispose();
            _socket.Dispose();
            try { Directory.Delete(_profile, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }
}
