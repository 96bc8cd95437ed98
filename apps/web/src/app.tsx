import { QueryClientProvider } from '@tanstack/react-query';
import { type ReactNode, useState } from 'react';
import { BrowserRouter, Link, Navigate, Route, Routes, useLocation } from 'react-router';
import { createQueryClient } from './api/queries.js';
import { SessionProvider, useSession } from './api/session.js';
import { AppLayout, PageHeader, useDocumentTitle } from './components/layout.js';
import { EmptyState } from './components/ui.js';
import { ArtifactsPage } from './pages/artifacts.js';
import { AuditPage } from './pages/audit.js';
import { ChannelsPage } from './pages/channels.js';
import { CompilationPage } from './pages/compilation.js';
import { FleetPage } from './pages/fleet.js';
import { KeysPage } from './pages/keys.js';
import { ModelPage } from './pages/model.js';
import { ModelsPage } from './pages/models.js';
import { PlaygroundPage } from './pages/playground.js';
import { RetentionPage } from './pages/retention.js';
import { SignInPage } from './pages/sign-in.js';
import { VersionPage } from './pages/version.js';
import { WebhooksPage } from './pages/webhooks.js';

export function App() {
  return (
    <SessionProvider>
      <SessionQueryCache>
        <BrowserRouter>
          <Routes>
            <Route path="/sign-in" element={<SignInPage />} />
            <Route element={<RequireSession />}>
              <Route index element={<ModelsPage />} />
              <Route path="models/:modelId" element={<ModelPage />} />
              <Route path="models/:modelId/channels" element={<ChannelsPage />} />
              <Route path="models/:modelId/channels/:channel/fleet" element={<FleetPage />} />
              <Route path="versions/:versionId" element={<VersionPage />} />
              <Route path="versions/:versionId/artifacts" element={<ArtifactsPage />} />
              <Route path="compilations/:compilationId" element={<CompilationPage />} />
              <Route path="playground" element={<PlaygroundPage />} />
              <Route path="keys" element={<KeysPage />} />
              <Route path="audit" element={<AuditPage />} />
              <Route path="retention" element={<RetentionPage />} />
              <Route path="webhooks" element={<WebhooksPage />} />
              <Route path="*" element={<NotFoundPage />} />
            </Route>
          </Routes>
        </BrowserRouter>
      </SessionQueryCache>
    </SessionProvider>
  );
}

/**
 * One query cache per signed-in key: answers given to one key (another tenant, another role) are never shown to the
 * next, and signing out drops them.
 */
function SessionQueryCache({ children }: { children: ReactNode }) {
  const { api } = useSession();
  const [cache, setCache] = useState(() => ({ api, client: createQueryClient() }));
  if (cache.api !== api) setCache({ api, client: createQueryClient() });
  return <QueryClientProvider client={cache.client}>{children}</QueryClientProvider>;
}

/** Signed-in pages; anyone else goes to the sign-in page and comes back after. */
function RequireSession() {
  const { api } = useSession();
  const location = useLocation();
  if (!api) return <Navigate to="/sign-in" replace state={{ from: location.pathname + location.search }} />;
  return <AppLayout />;
}

function NotFoundPage() {
  useDocumentTitle('Not found');
  return (
    <div className="page">
      <PageHeader title="Page not found" />
      <EmptyState
        title="Nothing lives at this address"
        action={
          <Link to="/" className="btn btn-primary">
            Go to models
          </Link>
        }
      />
    </div>
  );
}
