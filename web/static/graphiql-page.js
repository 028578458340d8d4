// taskchat's GraphiQL page: everything comes from this server (see web/graphiql.py).
(function () {
  const config = JSON.parse(document.getElementById('taskchat-graphiql-config').textContent);
  const url = window.location.href.split('?')[0].split('#')[0];
  const subscriptionUrl = url.replace(/^http/, 'ws');
  // GraphiQL sends the Headers pane as the WebSocket's connection_init payload too
  const base = GraphiQL.createFetcher({ url, subscriptionUrl });
  // GraphiQL picks the WebSocket by operation name; right after a tab switch its name can
  // lag behind the document (a subscription then goes out as a plain POST): name the
  // operation from the document that is actually sent
  const fetcher = (params, options) => {
    let documentAST;
    try {
      documentAST = GraphiQL.GraphQL.parse(params.query);
    } catch {
      return base(params, options);
    }
    const operations = documentAST.definitions.filter((d) => d.kind === 'OperationDefinition');
    const named = operations.find((d) => d.name?.value === params.operationName);
    const operationName = named || operations.length !== 1 ? params.operationName : operations[0].name?.value;
    return base({ ...params, operationName }, { ...options, documentAST });
  };
  const explorer = GraphiQLPluginExplorer.explorerPlugin();
  // every tab starts with the demo token; nothing is kept between visits, so a reload
  // always opens the examples with the server's current token
  const tabs = config.tabs.map((tab) => ({ ...tab, headers: config.headers }));
  const memory = new Map();
  const storage = {
    getItem: (key) => (memory.has(key) ? memory.get(key) : null),
    setItem: (key, value) => memory.set(key, String(value)),
    removeItem: (key) => memory.delete(key),
    clear: () => memory.clear(),
    get length() {
      return memory.size;
    },
  };
  const root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(
    React.createElement(GraphiQL, {
      fetcher,
      plugins: [explorer],
      defaultTabs: tabs,
      defaultHeaders: config.headers,
      storage,
      defaultEditorToolsVisibility: 'headers',
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
    }),
  );
})();
