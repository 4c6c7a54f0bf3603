/* maed's result viewer (maed.viewer, docs/OUTPUTS.md): the overlay video and the people's animated GLB bodies,
 * one timeline for both. A classic script (no ES modules: browsers refuse them on pages opened from file://)
 * that needs window.THREE (viewer/three.min.js, three.js) and window.MAED_VIEWER (viewer/<page>.data.js):
 *   scene: {title, fps, num_frames, width, height, focal, video (URL relative to the page, or null),
 *           note (a line shown in the 3D view, or null),
 *           people: [{id, name, color ("#rrggbb"), first_frame, last_frame, glb (file name), data (key of glb)}]}
 *   glb:   {key: the GLB file's bytes, zlib-deflated, base64}
 * The data comes as a script because a page opened from file:// may not read other files (fetch, XHR).
 *
 * Frames: frame i of the input is shown by the video from time i / fps to (i + 1) / fps; a person's GLB has one
 * key per tracked frame, key k (at k / fps seconds) being frame first_frame + k. The page shows one frame at a
 * time in both views: the video's presented frame while it plays, the timeline's while paused.
 *
 * window.maedViewer (for scripts and tests): ready (a promise), frame(), setFrame(i) (a promise, resolved once
 * both views show frame i), settled() (the promise of the last frame change: the timeline's, a pause's),
 * setVisible(id, on), screenBox(id) (the body's box on the page, CSS pixels), play(), pause(), loadMs (page
 * start to first full draw, milliseconds).
 */
(function () {
  "use strict";

  const data = window.MAED_VIEWER;
  const $ = (id) => document.getElementById(id);

  function note(where, message) {
    const box = $(where);
    box.textContent = message;
    box.hidden = false;
  }

  function fail(where, message) {
    note(where, message);
    console.error("maed viewer: " + message);
  }

  if (!data || !data.scene) {
    fail("scene-message", "the viewer's data (viewer/*.data.js next to this page) did not load");
    return;
  }
  const scene = data.scene;
  const fps = scene.fps;
  const lastFrame = Math.max(scene.num_frames - 1, 0);
  const clampFrame = (i) => Math.min(Math.max(Math.round(i), 0), lastFrame);

  // ------------------------------------------------------------------------------------------- state
  const state = { frame: 0, playing: false, clockStart: 0, clockFrame: 0 };
  const people = []; // {info, root, mixer, action, mesh, visible}
  const video = $("video");
  let hasVideo = false;
  let seekWaiters = [];
  let renderWaiters = [];

  // ------------------------------------------------------------------------------------------- timeline
  const slider = $("timeline");
  slider.max = String(lastFrame);
  const frameLabel = $("frame-label");
  const playButton = $("play");

  function showFrame(i) {
    state.frame = clampFrame(i);
    slider.value = String(state.frame);
    const seconds = (state.frame / fps).toFixed(2);
    frameLabel.textContent = `frame ${state.frame} / ${lastFrame} \u00b7 ${seconds} s`;
    for (const p of people) posePerson(p);
    requestRender();
  }

  // resolves once the video presents the frame: the seek done, and the picture handed to the compositor (a
  // paused video presents the frame it seeked to, even the one it showed, within milliseconds)
  async function seekVideo(i) {
    await videoReady;
    if (!hasVideo) return;
    const presented = new Promise((resolve) => {
      if (exactFrames) video.requestVideoFrameCallback(() => resolve());
      setTimeout(resolve, exactFrames ? 1000 : 50);
    });
    await new Promise((resolve) => {
      seekWaiters.push(resolve);
      video.currentTime = (i + 0.5) / fps; // the middle of the frame's display interval: no rounding to the one before
    });
    await presented;
  }

  let settling = Promise.resolve(0);
  function setFrame(i) {
    const frame = clampFrame(i);
    if (state.playing) {
      state.clockStart = performance.now();
      state.clockFrame = frame;
    }
    showFrame(frame);
    settling = Promise.all([seekVideo(frame), nextRender()]).then(() => frame);
    return settling;
  }

  function play() {
    if (state.playing) return;
    if (state.frame >= lastFrame) setFrame(0);
    state.playing = true;
    state.clockStart = performance.now();
    state.clockFrame = state.frame;
    playButton.textContent = "\u23f8";
    playButton.title = "pause (space)";
    if (hasVideo) {
      video.play().catch((e) => {
        console.warn("maed viewer: the video does not play (" + e.message + "); the timeline runs alone");
        hasVideo = false;
      });
    }
    requestAnimationFrame(tick);
  }

  function pause() {
    if (!state.playing) return;
    state.playing = false;
    playButton.textContent = "\u25b6";
    playButton.title = "play (space)";
    if (hasVideo) {
      video.pause();
      setFrame(state.frame); // the video stops between frames: show the frame the bodies show
    }
  }

  // while playing: the video's frames (requestVideoFrameCallback below, or its clock), else a clock of our own
  function tick() {
    if (!state.playing) return;
    let frame = state.frame;
    if (!hasVideo) {
      frame = state.clockFrame + Math.floor(((performance.now() - state.clockStart) / 1000) * fps);
    } else if (!exactFrames) {
      frame = Math.floor(video.currentTime * fps + 1e-3);
    }
    if (frame !== state.frame) showFrame(frame);
    if (frame >= lastFrame && !hasVideo) {
      pause();
      return;
    }
    requestAnimationFrame(tick);
  }

  slider.addEventListener("input", () => setFrame(Number(slider.value)));
  playButton.addEventListener("click", () => (state.playing ? pause() : play()));
  document.addEventListener("keydown", (e) => {
    if (e.target instanceof HTMLButtonElement) return; // a button's own keys press it
    if (e.target instanceof HTMLInputElement && e.target.type !== "range") return;
    if (e.key === " ") {
      e.preventDefault();
      state.playing ? pause() : play();
    } else if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
      e.preventDefault();
      pause();
      setFrame(state.frame + (e.key === "ArrowRight" ? 1 : -1));
    }
  });

  // ------------------------------------------------------------------------------------------- video
  const exactFrames = "requestVideoFrameCallback" in HTMLVideoElement.prototype;
  let videoReady = Promise.resolve();
  if (scene.video) {
    hasVideo = true;
    videoReady = new Promise((resolve) => {
      video.addEventListener("loadeddata", resolve, { once: true });
      video.addEventListener("error", resolve, { once: true });
    });
    video.addEventListener("seeked", () => {
      const waiting = seekWaiters;
      seekWaiters = [];
      waiting.forEach((resolve) => resolve());
    });
    video.addEventListener("error", () => {
      hasVideo = false;
      seekWaiters.forEach((resolve) => resolve());
      seekWaiters = [];
      fail("video-message", `this browser cannot play ${scene.video} (H.264): the timeline drives the 3D view alone`);
    });
    video.addEventListener("ended", () => {
      showFrame(lastFrame);
      pause();
    });
    if (exactFrames) {
      // the frame the video presents, from its timestamp (the clock runs ahead of what is on screen)
      const onFrame = (now, meta) => {
        if (state.playing) showFrame(meta.mediaTime * fps);
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    }
    video.src = scene.video;
  } else {
    video.hidden = true;
    note("video-message", "no overlay video in this run (maed demo --no-render): the timeline drives the 3D view");
  }

  // ------------------------------------------------------------------------------------------- 3D view
  const canvas = $("scene");
  let renderer;
  try {
    renderer = new THREE.WebGLRenderer({ canvas: canvas, antialias: true });
  } catch (e) {
    fail("scene-message", "this browser has no WebGL: the 3D view cannot be drawn (" + e.message + ")");
    return;
  }
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  const world = new THREE.Scene();
  world.background = new THREE.Color("#24272b");
  world.add(new THREE.HemisphereLight("#ffffff", "#50545a", 2.2));
  const sun = new THREE.DirectionalLight("#ffffff", 1.6);
  sun.position.set(1, 3, 2);
  world.add(sun);
  // the video's camera: at the origin, looking down -z (the GLBs' frame), with the field of view of the nominal
  // focal length, so the first view shows the people where the video does
  const fovDegrees = (2 * Math.atan(scene.height / (2 * scene.focal)) * 180) / Math.PI;
  const camera = new THREE.PerspectiveCamera(fovDegrees, 1, 0.05, 2000);
  const controls = new THREE.OrbitControls(camera, canvas);
  controls.addEventListener("change", requestRender);
  const HOME_ELEVATION = 20; // degrees above the video camera that the first view looks from
  let grid = null;
  let home = { position: new THREE.Vector3(0, 1.5, 4), target: new THREE.Vector3(0, 1, 0) };

  let renderQueued = false;
  function requestRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderer.render(world, camera);
      const waiting = renderWaiters;
      renderWaiters = [];
      waiting.forEach((resolve) => resolve());
    });
  }

  function nextRender() {
    return new Promise((resolve) => {
      renderWaiters.push(resolve);
      requestRender();
    });
  }

  function resize() {
    const box = canvas.parentElement.getBoundingClientRect();
    const width = Math.max(1, Math.floor(box.width));
    const height = Math.max(1, Math.floor(box.height));
    renderer.setSize(width, height, false);
    camera.aspect = width / height;
    camera.updateProjectionMatrix();
    requestRender();
  }
  new ResizeObserver(resize).observe(canvas.parentElement);
  resize();

  function posePerson(p) {
    const key = state.frame - p.info.first_frame;
    const inTrack = key >= 0 && state.frame <= p.info.last_frame;
    p.root.visible = p.visible && inTrack;
    if (inTrack) {
      p.action.time = key / fps; // a key exactly: the mixer's interpolation returns that key's pose
      p.mixer.update(0);
    }
  }

  function base64Bytes(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  async function inflate(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate"));
    return new Response(stream).arrayBuffer();
  }

  async function loadPerson(info) {
    const glb = await inflate(base64Bytes(data.glb[info.data]));
    const gltf = await new Promise((resolve, reject) => new THREE.GLTFLoader().parse(glb, "", resolve, reject));
    const root = gltf.scene;
    let mesh = null;
    root.traverse((o) => {
      if (o.isSkinnedMesh) {
        mesh = o;
        o.material.color.set(info.color); // the overlay's colour, as the page lists it (sRGB)
        o.frustumCulled = false; // its bounds are those of the rest pose, not of the animated body
      }
    });
    world.add(root);
    const mixer = new THREE.AnimationMixer(root);
    const action = mixer.clipAction(gltf.animations[0]);
    action.play(); // never advanced: posePerson sets its time directly
    const person = { info, root, mixer, action, mesh, visible: true, glb };
    people.push(person);
    return person;
  }

  // the bodies' bounds over their tracks (a sample of frames and vertices): the ground grid goes under the
  // lowest foot, the orbit turns about the people's centre
  function bodyBox(p, box) {
    if (!p.mesh) return box;
    p.root.updateMatrixWorld(true);
    p.mesh.skeleton.update();
    const v = new THREE.Vector3();
    const count = p.mesh.geometry.attributes.position.count;
    for (let i = 0; i < count; i += 7) {
      p.mesh.getVertexPosition(i, v);
      box.expandByPoint(v.applyMatrix4(p.mesh.matrixWorld));
    }
    return box;
  }

  function frameTheScene() {
    const box = new THREE.Box3();
    const saved = state.frame;
    for (const p of people) {
      const n = p.info.last_frame - p.info.first_frame + 1;
      const samples = Math.min(n, 12);
      for (let s = 0; s < samples; s++) {
        state.frame = p.info.first_frame + Math.round((s * (n - 1)) / Math.max(samples - 1, 1));
        posePerson(p);
        bodyBox(p, box);
      }
    }
    state.frame = saved;
    if (box.isEmpty()) {
      grid = new THREE.GridHelper(10, 20, "#8a9099", "#4a4f56");
    } else {
      const centre = box.getCenter(new THREE.Vector3());
      const size = box.getSize(new THREE.Vector3());
      const extent = Math.max(4, Math.ceil(Math.max(size.x, size.z) * 1.5));
      grid = new THREE.GridHelper(extent, extent * 2, "#8a9099", "#4a4f56");
      grid.position.set(centre.x, box.min.y, centre.z);
      home = { position: raised(new THREE.Vector3(0, 0, 0), centre, HOME_ELEVATION), target: centre };
    }
    world.add(grid);
    resetView();
  }

  // the video camera's position (eye) turned up about the target by `degrees`: the ground grid shows, the people
  // keep their places left to right
  function raised(eye, target, degrees) {
    const d = eye.clone().sub(target);
    const radius = d.length();
    const horizontal = Math.hypot(d.x, d.z);
    if (radius === 0 || horizontal === 0) return eye;
    const elevation = Math.atan2(d.y, horizontal) + (degrees * Math.PI) / 180;
    const scale = (radius * Math.cos(elevation)) / horizontal;
    return new THREE.Vector3(d.x * scale, radius * Math.sin(elevation), d.z * scale).add(target);
  }

  function resetView() {
    camera.position.copy(home.position);
    controls.target.copy(home.target);
    controls.update();
    requestRender();
  }
  $("reset-view").addEventListener("click", resetView);

  // ------------------------------------------------------------------------------------------- people list
  function listPerson(p) {
    const row = document.createElement("li");
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.dataset.person = String(p.info.id);
    box.addEventListener("change", () => setVisible(p.info.id, box.checked));
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = p.info.color;
    const name = document.createElement("span");
    name.textContent = `${p.info.name} \u00b7 frames ${p.info.first_frame}\u2013${p.info.last_frame}`;
    label.append(box, swatch, name);
    const download = document.createElement("a");
    download.className = "download";
    download.textContent = "GLB";
    download.title = `download ${p.info.glb} (the animated body: Blender, glTF viewers)`;
    download.download = p.info.glb;
    download.href = URL.createObjectURL(new Blob([p.glb], { type: "model/gltf-binary" }));
    row.append(label, download);
    $("people").append(row);
  }

  function setVisible(id, on) {
    const p = people.find((q) => q.info.id === id);
    if (!p) throw new Error(`no person ${id}`);
    p.visible = Boolean(on);
    const box = document.querySelector(`input[data-person="${id}"]`);
    if (box) box.checked = p.visible;
    posePerson(p);
    return nextRender();
  }

  function screenBox(id) {
    const p = people.find((q) => q.info.id === id);
    if (!p || !p.root.visible) return null;
    const box = bodyBox(p, new THREE.Box3());
    const rect = canvas.getBoundingClientRect();
    const out = { left: Infinity, top: Infinity, right: -Infinity, bottom: -Infinity };
    for (const x of [box.min.x, box.max.x])
      for (const y of [box.min.y, box.max.y])
        for (const z of [box.min.z, box.max.z]) {
          const v = new THREE.Vector3(x, y, z).project(camera);
          const px = rect.left + ((v.x + 1) / 2) * rect.width;
          const py = rect.top + ((1 - v.y) / 2) * rect.height;
          out.left = Math.min(out.left, px);
          out.right = Math.max(out.right, px);
          out.top = Math.min(out.top, py);
          out.bottom = Math.max(out.bottom, py);
        }
    return out;
  }

  // ------------------------------------------------------------------------------------------- start
  const api = {
    ready: null,
    loadMs: null,
    frame: () => state.frame,
    setFrame: setFrame,
    settled: () => settling,
    setVisible: setVisible,
    screenBox: screenBox,
    play: play,
    pause: pause,
    people: () => people.map((p) => ({ ...p.info, shown: p.root.visible })),
  };
  window.maedViewer = api;
  if (scene.note) note("scene-message", scene.note);
  performance.mark("maed:script");
  api.ready = Promise.all(scene.people.map(loadPerson))
    .then(() => {
      performance.mark("maed:bodies");
      people.sort((a, b) => a.info.id - b.info.id);
      people.forEach(listPerson);
      $("people-empty").hidden = people.length > 0;
      frameTheScene();
      showFrame(0);
      return Promise.all([seekVideo(0).then(() => performance.mark("maed:video")), nextRender()]);
    })
    .then(() => {
      performance.mark("maed:ready");
      api.loadMs = performance.now();
      document.body.dataset.ready = "1";
    })
    .catch((e) => {
      fail("scene-message", "the 3D view failed to load: " + (e && e.message ? e.message : e));
      throw e;
    });
})();
